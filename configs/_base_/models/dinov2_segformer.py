# DINOv2 ViT-B/14 (Meta's checkpoint) + SegFormer all-MLP head. The head takes the four
# same-scale (1/14) feature maps directly: each gets its own 1x1 projection to `channels`,
# then they are concatenated and fused, as in SegFormer. num_classes comes from the dataset.
norm_cfg = dict(type="BN", requires_grad=True)
crop_size = (518, 518)
data_preprocessor = dict(
    type="SegDataPreProcessor",
    mean=[123.675, 116.28, 103.53],  # ImageNet statistics, as DINOv2 was trained with
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size,
)
model = dict(
    type="EncoderDecoder",
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type="DINOv2ViT",
        arch="vitb14",
        registers=False,
        out_indices=(8, 9, 10, 11),
        checkpoint="checkpoints/dinov2_vitb14_pretrain.pth",
        frozen=True,
        grad_checkpointing=False,
    ),
    decode_head=dict(
        type="SegformerHead",
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        channels=256,
        dropout_ratio=0.1,
        norm_cfg=norm_cfg,
        align_corners=False,
        ignore_index=255,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="slide", crop_size=(518, 518), stride=(259, 259)),
)

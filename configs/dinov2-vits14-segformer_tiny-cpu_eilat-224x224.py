# The tiny CPU config the tests use: the same model code with ViT-S/14 (random weights unless
# model.backbone.checkpoint names Meta's file), 224x224 crops, batch 2, 300 iterations on
# EilatMixx: about two minutes on 2 cores. Saves a checkpoint at the end.
_base_ = [
    "./_base_/models/dinov2_segformer.py",
    "./_base_/datasets/eilat.py",
    "./_base_/schedules/schedule_300i.py",
    "./_base_/default_runtime.py",
]
crop_size = (224, 224)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch="vits14", out_indices=(8, 9, 10, 11), checkpoint=None),
    decode_head=dict(
        in_channels=[384, 384, 384, 384], channels=128, num_classes={{_base_.num_classes}}
    ),
    test_cfg=dict(mode="slide", crop_size=crop_size, stride=(112, 112)),
)
# EilatMixx tiles are 1380x920: shrink them first so 224 crops see whole colonies.
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomResize", scale=(460, 460), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(460, 460), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(
    batch_size=2, num_workers=1, persistent_workers=False, dataset=dict(pipeline=train_pipeline)
)
val_dataloader = dict(num_workers=1, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
log_processor = dict(by_epoch=False)

# Pipelines and dataloaders for a folder written by `coralseg prepare`. The dataset configs
# beside this file (or `coralseg train --data DIR`) fill in data_root and metainfo.
train_crop = (518, 518)  # named apart from the model's crop_size: bases may not share keys
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="RandomResize", scale=train_crop, ratio_range=(1.0, 3.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=train_crop, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=False),
    dict(type="PackSegInputs"),
]
# Test-time augmentation (`coralseg test --tta`): three scales, each also flipped.
tta_model = dict(type="SegTTAModel")
tta_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(
        type="TestTimeAug",
        transforms=[
            [dict(type="Resize", scale_factor=r, keep_ratio=True) for r in (0.75, 1.0, 1.25)],
            [
                dict(type="RandomFlip", prob=0.0, direction="horizontal"),
                dict(type="RandomFlip", prob=1.0, direction="horizontal"),
            ],
            [dict(type="LoadAnnotations")],
            [dict(type="PackSegInputs")],
        ],
    ),
]
dataset_common = dict(
    type="BaseSegDataset",
    data_root="data/coralseg",
    img_suffix=".jpg",
    seg_map_suffix=".png",
    reduce_zero_label=False,
    ignore_index=255,
)
train_dataloader = dict(
    batch_size=5,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        **dataset_common,
        data_prefix=dict(img_path="train/data", seg_map_path="train/labels"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        **dataset_common,
        data_prefix=dict(img_path="val/data", seg_map_path="val/labels"),
        pipeline=test_pipeline,
    ),
)
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        **dataset_common,
        data_prefix=dict(img_path="test/data", seg_map_path="test/labels"),
        pipeline=test_pipeline,
    ),
)
val_evaluator = dict(type="CoralIoUMetric")
test_evaluator = val_evaluator

# The seed's schedule: 150 epochs, AdamW lr 1e-3, poly decay, validation every 20 epochs;
# keeps the best checkpoint by mIoU (best_mIoU_epoch_N.pth) and the last one.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=None,
)
param_scheduler = [
    dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=150, by_epoch=True),
]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=150, val_interval=20)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=10, log_metric_by_epoch=True),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(
        type="CheckpointHook",
        by_epoch=True,
        interval=20,
        save_best="mIoU",
        rule="greater",
        max_keep_ckpts=1,
        save_last=True,
    ),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="SegVisualizationHook"),
)

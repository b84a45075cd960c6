# The tiny CPU schedule: the seed's optimiser, poly decay and checkpoints (schedule_150e.py)
# over 300 iterations instead of 150 epochs; validates at the end, checkpoints every 150.
_base_ = ["./schedule_150e.py"]
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=300, by_epoch=False)]
train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=300, val_interval=300)
default_hooks = dict(
    logger=dict(log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=150),
)

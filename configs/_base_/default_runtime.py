default_scope = "mmseg"
custom_imports = dict(imports=["coral_core.models"], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),  # coralseg train switches to gloo on CPU-only machines
)
vis_backends = [dict(type="LocalVisBackend"), dict(type="TensorboardVisBackend")]
# No fixed name: MMEngine then names it after the run, so runs in one process never share
# a visualizer (and write their logs into each other's folders).
visualizer = dict(type="SegLocalVisualizer", vis_backends=vis_backends)
log_processor = dict(by_epoch=True)
log_level = "INFO"
load_from = None
resume = False
# Stores the taxonomy and mask convention in every checkpoint (meta['coralseg']).
custom_hooks = [dict(type="CoralsegCheckpointMetaHook")]

# DINOv2 ViT-B/14 (frozen) + SegFormer head, 150 epochs, CRIOBE 'agnostic', 518x518 crops.
_base_ = [
    "./_base_/models/dinov2_segformer.py",
    "./_base_/datasets/criobe_agnostic.py",
    "./_base_/schedules/schedule_150e.py",
    "./_base_/default_runtime.py",
]
model = dict(decode_head=dict(num_classes={{_base_.num_classes}}))

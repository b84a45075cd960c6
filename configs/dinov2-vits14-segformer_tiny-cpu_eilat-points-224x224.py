# The tiny CPU config trained from point labels: the same model, data and schedule as
# dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py, with the point-label loss (labelled
# pixels only, each photo weighted alike). Give it a folder written by
# `coralseg prepare --points sparse` or `--points superpixels` through `coralseg train --data`.
_base_ = [
    "./dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py",
    "./_base_/losses/point_labels.py",
]
model = dict(decode_head=dict(loss_decode={{_base_.point_label_loss}}))

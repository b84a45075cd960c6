# The loss for masks made from point labels (`coralseg prepare --points sparse|superpixels`):
# cross-entropy over labelled pixels only, averaged per photo, so a photo with a few points
# trains as much as a densely labelled one (coral_core/models/point_loss.py). Bases may not
# share keys, so this layer names the loss and a leaf config puts it in the model:
#   _base_ = ["./<a model + dataset config>.py", "./_base_/losses/point_labels.py"]
#   model = dict(decode_head=dict(loss_decode={{_base_.point_label_loss}}))
# _delete_: replaces the model's loss instead of merging into it (CrossEntropyLoss's keys).
point_label_loss = dict(_delete_=True, type="PointLabelLoss", loss_weight=1.0)

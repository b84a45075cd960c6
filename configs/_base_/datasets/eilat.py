# EilatMixx (Red Sea) as published: images/*.jpg and labels/*.png with values 0-9 and
# 255 = unlabelled, i.e. the 'eilat' taxonomy with background as ignore. Every tenth image
# (by file name) is held out for validation and testing.
_base_ = ["./coral_semantic.py"]
import coral_core.training.mmseg_config as coral  # noqa: E402  (after _base_: mmengine's rule)

taxonomy = "eilat"
data_root = "../shared/data/eilat_train"
coralseg_encoding = coral.encoding_dict(taxonomy, background_is_ignore=True)
num_classes = coral.num_labels(taxonomy, background_is_ignore=True)
metainfo = coral.metainfo(taxonomy, background_is_ignore=True)
num_images = 91
held_out = [i for i in range(num_images) if i % 10 == 0]
train_indices = [i for i in range(num_images) if i % 10 != 0]
eilat_prefix = dict(img_path="images", seg_map_path="labels")
train_dataloader = dict(
    dataset=dict(
        data_root=data_root, metainfo=metainfo, data_prefix=eilat_prefix, indices=train_indices
    )
)
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, data_prefix=eilat_prefix, indices=held_out)
)
test_dataloader = val_dataloader

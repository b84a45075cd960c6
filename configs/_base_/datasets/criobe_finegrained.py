# CRIOBE photo-quadrats, 'finegrained' taxonomy, as written by
#   coralseg prepare DATASET --taxonomy finegrained --out data/criobe_finegrained
_base_ = ["./coral_semantic.py"]
import coral_core.training.mmseg_config as coral  # noqa: E402  (after _base_: mmengine's rule)

taxonomy = "finegrained"
data_root = "data/criobe_finegrained"
coralseg_encoding = coral.encoding_dict(taxonomy)
num_classes = coral.num_labels(taxonomy)
metainfo = coral.metainfo(taxonomy)
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))

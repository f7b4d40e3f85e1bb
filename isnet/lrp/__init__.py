"""The LRP block: rules for one layer, BatchNorm canonisation, what to explain, and one reverse
walk per model family. The facts behind each rule are in ``docs/lrp-rules.md``.

Importing this package registers every family's walk.
"""

from isnet.lrp import densenet, resnet, vgg
from isnet.lrp.config import LRPConfig
from isnet.lrp.registry import is_lrp_ready, relevance_from_messages, walk_for
from isnet.lrp.targets import EXPLAIN_MODES, check_mode, pooled_messages

__all__ = ["EXPLAIN_MODES", "LRPConfig", "check_mode", "densenet", "is_lrp_ready",
           "pooled_messages", "relevance_from_messages", "resnet", "vgg", "walk_for"]

"""Names the command line shows before torch is imported: the one home of these defaults."""

DEFAULT_BACKBONE = "efficientnet_lite0"
REGIMENS = ("auto", "combi", "finetune", "scratch")
LOSSES = ("ce", "asl")

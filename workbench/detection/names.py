"""Names the command line shows before torch is imported: the one home of these defaults."""

DEFAULT_BACKBONE = "efficientnet_lite0"
REGIMENS = ("auto", "combi", "finetune", "scratch")
LOSSES = ("ce", "asl")
#: how a version can run: torch (``Predictor``), or ONNX Runtime (``onnx.OnnxPredictor``,
#: after `wb models export`)
RUNTIMES = ("torch", "onnx")
EXPORT_FORMATS = ("onnx",)
DEFAULT_OPSET = 17
#: the opsets torch's TorchScript-based exporter writes (torchvision's detectors need 11)
OPSETS = (11, 20)

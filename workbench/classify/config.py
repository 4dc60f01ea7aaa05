"""What a classifier run is: the ``ClassifyConfig`` and the study's defaults.

The study's regimens: ``transfer`` trains the last layer only, ``scratch`` every layer
from random weights, ``combi`` first the last layer for ``head_epochs`` then every layer
at ``lr * FINETUNE_LR_FACTOR``. Early stopping waits ``patience`` epochs without a better
validation accuracy (study: 15 for transfer/scratch, 35 for combi); batch 75 for the
last-layer phase, 15 when all layers train. Budgets are epochs; ``max_minutes`` only caps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import WorkbenchError

REGIMENS = ("transfer", "scratch", "combi")
LEVELS = ("species", "category")
DEFAULT_BACKBONE = "efficientnet_lite0"
DEFAULT_EPOCHS = 100
DEFAULT_IMAGE_SIZE = 224
#: Adam learning rate of the last layer (transfer, combi's first phase); scratch uses it too
DEFAULT_LR = 1e-3
FINETUNE_LR_FACTOR = 0.1  # combi's all-layer phase
STUDY_PATIENCE = {"transfer": 15, "scratch": 15, "combi": 35}
STUDY_BATCH = {"last_layer": 75, "all_layers": 15}
DEFAULT_HEAD_EPOCHS = 10
#: which catalog images `wb classify predict --images` runs on (active images only):
#: every one, those without an image-level label, those without annotations (the
#: ones `wb prioritize` ranks)
IMAGE_SETS = ("all", "unlabelled", "unannotated")
DEFAULT_IMAGE_SET = "all"
DEFAULT_PREDICT_BATCH = 16


@dataclass
class ClassifyConfig:
    backbone: str = DEFAULT_BACKBONE
    regimen: str = "transfer"
    level: str = "category"
    positive: list[str] | None = None  # binary: these classes vs the rest
    negatives: bool = False  # background-only images join the negative class
    epochs: int = DEFAULT_EPOCHS
    batch_size: int | None = None  # None: the study's per phase
    lr: float = DEFAULT_LR
    patience: int | None = None  # None: the study's per regimen
    image_size: int = DEFAULT_IMAGE_SIZE
    seed: int = 0
    augment: dict[str, float] = field(default_factory=dict)  # class -> crop margin
    head_epochs: int = DEFAULT_HEAD_EPOCHS
    max_minutes: float | None = None
    pretrained: bool = True

    def __post_init__(self) -> None:
        if self.regimen not in REGIMENS:
            raise WorkbenchError(f"unknown regimen '{self.regimen}'; known: {', '.join(REGIMENS)}")
        if self.level not in LEVELS:
            raise WorkbenchError(f"unknown level '{self.level}'; known: {', '.join(LEVELS)}")
        if self.epochs < 1:
            raise WorkbenchError("--epochs must be at least 1")
        if self.regimen == "scratch":
            self.pretrained = False

    def patience_epochs(self) -> int:
        return self.patience if self.patience is not None else STUDY_PATIENCE[self.regimen]

    def batch_for(self, all_layers: bool) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return STUDY_BATCH["all_layers" if all_layers else "last_layer"]

    def to_dict(self) -> dict:
        return asdict(self)


def config_of(record) -> ClassifyConfig:
    """The ``ClassifyConfig`` a registered classifier (a ``ModelRecord``) was trained with."""
    return ClassifyConfig(**{**record.config["train"], "pretrained": False})

"""What a run is and where it runs: the typed config tree, its loading, and the pure planners over
it.

This layer imports neither torch nor Ray (a test imports it with both blocked),
so validating a config, `rlmr config`, `rlmr --help` and `cluster/submit.sh`
answer in a second on any machine.

- `models`: model sources (`local`, `package`, `tiny`) and inference engines (`hf`, `vllm`);
- `schema`: every other section and `RLMRConfig`, with the cross-section checks;
- `loading`: YAML, `--set` overrides, errors naming `FILE: dotted.key`, the resolved copy;
- `placement`: the cluster section -> Ray placement bundles (a pure function);
- `memory`: per-GPU memory arithmetic behind `cluster/SCALING.md`.
"""

from rlmr.config.cluster import ClusterConfig, CPUResources, RoleResources
from rlmr.config.judge import JudgeTaskConfig, SFTConfig, ShapingConfig
from rlmr.config.loading import (
    ConfigError,
    apply_overrides,
    format_validation_error,
    load_config,
    parse_override,
    read_yaml,
    save_resolved,
    to_dict,
    validate_config,
)
from rlmr.config.models import (
    EngineConfig,
    HFEngine,
    LocalModel,
    ModelConfig,
    ModelSource,
    PackageModel,
    TinyModel,
    VLLMEngine,
)
from rlmr.config.schema import (
    AlgoConfig,
    CheckpointConfig,
    ClipConfig,
    DataConfig,
    EvalSuitesConfig,
    GenRMReward,
    KLConfig,
    LearnerConfig,
    LoggingConfig,
    NoWritingReward,
    RewardConfig,
    RLMRConfig,
    RolloutConfig,
    TrainerConfig,
    VerifierConfig,
    WandbConfig,
    WritingReward,
)

__all__ = [
    "AlgoConfig",
    "CheckpointConfig",
    "ClipConfig",
    "ClusterConfig",
    "ConfigError",
    "DataConfig",
    "EngineConfig",
    "GenRMReward",
    "HFEngine",
    "JudgeTaskConfig",
    "KLConfig",
    "LearnerConfig",
    "LocalModel",
    "LoggingConfig",
    "ModelConfig",
    "ModelSource",
    "NoWritingReward",
    "PackageModel",
    "RLMRConfig",
    "RewardConfig",
    "CPUResources",
    "RoleResources",
    "RolloutConfig",
    "SFTConfig",
    "ShapingConfig",
    "TinyModel",
    "EvalSuitesConfig",
    "TrainerConfig",
    "VLLMEngine",
    "VerifierConfig",
    "WandbConfig",
    "WritingReward",
    "apply_overrides",
    "format_validation_error",
    "load_config",
    "parse_override",
    "read_yaml",
    "save_resolved",
    "to_dict",
    "validate_config",
]

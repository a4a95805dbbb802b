"""MEAP pretraining with Lightning Fabric: `pretrain(PretrainArgs(...))`, or `meap-pretrain` from the shell."""

from lit_gpt.pretrain.args import PretrainArgs

__all__ = ["PretrainArgs", "pretrain"]


def __getattr__(name):
    # The trainer pulls in lightning; keep `import lit_gpt.pretrain` light for recipe checks.
    if name == "pretrain":
        from lit_gpt.pretrain.train import pretrain

        return pretrain
    raise AttributeError(name)

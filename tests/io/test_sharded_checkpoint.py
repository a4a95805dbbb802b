"""Sharded checkpoint folders (lit_gpt/io/sharded_checkpoint.py) as the converter reads them."""

import pytest
import torch

from lit_gpt.config import Config
from lit_gpt.convert.cli import lit_to_hf_main
from lit_gpt.model import GPT


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")  # dcp.save in one process, as meant
@pytest.mark.parametrize("meta", [[1, 2], "pico_LLaMA"], ids=["list", "str"])
def test_a_meta_file_that_is_not_a_dict_is_one_line(tmp_path, capsys, meta):
    import torch.distributed.checkpoint as dcp

    folder = tmp_path / "step-00000002.pth"
    with torch.device("meta"):
        shapes = GPT(Config.from_name("pico_LLaMA"), fused=False).state_dict()
    dcp.save({"model": {k: torch.zeros(v.shape) for k, v in shapes.items()}}, checkpoint_id=folder, no_dist=True)
    torch.save(meta, folder / "meta.pt")
    out = tmp_path / "hf"
    with pytest.raises(SystemExit) as exit_info:
        lit_to_hf_main(["--checkpoint_name", str(folder), "--out_dir", str(out), "--model_name", "pico_LLaMA"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err, err
    assert err.strip().splitlines() == [f"error: {folder / 'meta.pt'}: holds a {type(meta).__name__}, not a dict"]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [folder.name]

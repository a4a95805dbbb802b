"""Greedy continuation of a prompt by a Hugging Face folder or a lit checkpoint.

    python scripts/generate.py --model_dir out/meap_tiny_hf --prompt "The capital of" [--max_new_tokens 40]
    python scripts/generate.py --model_dir out/meap_tiny/step-00000160.pth --prompt "..."
"""

import sys

from lit_gpt.cli import ArgumentParser, exit_on_user_error
from lit_gpt.eval import options
from lit_gpt.eval.generation import greedy_generate
from lit_gpt.eval.models import load_model


@exit_on_user_error
def main(argv=None) -> list[str]:
    parser = ArgumentParser(description=__doc__)
    options.add_model_arguments(parser)
    parser.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    parser.add_argument("--max_new_tokens", type=options.positive_int, default=40)
    args = parser.parse_args(argv)
    loaded = load_model(args.model_dir, tokenizer_dir=args.tokenizer_dir, device=args.device, dtype=args.dtype,
                        trust_remote_code=args.trust_remote_code)
    prompts = [loaded.tokenizer(p)["input_ids"] for p in args.prompt]
    outputs = greedy_generate(loaded.model, loaded.tokenizer, prompts, args.max_new_tokens, batch_size=args.batch_size)
    for prompt, output in zip(args.prompt, outputs):
        # The continuation in bold on a terminal, so it stands out from the prompt.
        print(f"{prompt}\033[1m{output}\033[0m" if sys.stdout.isatty() else f"{prompt}{output}")
    return outputs


if __name__ == "__main__":
    main()

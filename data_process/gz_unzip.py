"""Decompress C4 .json.gz files (the upstream unzip step). prepare_c4.py reads .json.gz directly,
so this is only needed by tools that want plain JSON lines.

    python data_process/gz_unzip.py --source_dir original_data [--destination_dir json_c4] [--remove_source]
"""

import argparse

from lit_gpt.cli import exit_on_user_error
from lit_gpt.prepare.pipeline import gunzip_files


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source_dir", required=True, help="folder searched recursively for *.gz")
    parser.add_argument("--destination_dir", default=None, help="where to write (default: next to each archive)")
    parser.add_argument("--remove_source", action="store_true", help="delete each archive once unzipped")
    args = parser.parse_args(argv)
    written = gunzip_files(args.source_dir, args.destination_dir, remove_source=args.remove_source)
    print(f"unzipped {len(written)} files (existing outputs left as they were)")


if __name__ == "__main__":
    main()

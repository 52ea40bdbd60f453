"""``python -m sealtrail``: the command line."""

from sealtrail.cli.app import main

if __name__ == "__main__":
    main()

"""``python -m sealtrail.cli``: the same as the ``sealtrail`` console script."""

from sealtrail.cli.app import main

if __name__ == "__main__":  # verify's worker processes re-import this module
    main()

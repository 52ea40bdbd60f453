"""``python -m sealtrail.cli``: the same as the ``sealtrail`` console script."""

from sealtrail.cli.app import main

main()

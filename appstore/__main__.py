"""`python -m appstore …` runs the CLI (how `appstore stack` starts each process)."""

from appstore.cli import main

main()

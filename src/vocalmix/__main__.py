"""``python -m vocalmix``: the command line."""

from vocalmix.frontends.cli import run

if __name__ == "__main__":  # a worker process (live's settle estimate) imports this too
    run()

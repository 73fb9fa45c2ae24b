"""``python -m fastsoftmax``: print what is running (see show_runtime())."""

from ._runtime import show_runtime

if __name__ == "__main__":
    show_runtime()

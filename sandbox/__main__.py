"""`python -m sandbox`: serve the sandbox API, with the options of `hellotracks sandbox`."""

from sandbox.server import sandbox_command

if __name__ == "__main__":
    sandbox_command(prog_name="python -m sandbox")

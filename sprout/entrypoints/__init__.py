"""What starts Sprout: the `sprout` command, the Quart app factory, the worker and the
Streamlit page. Each builds its parts with `sprout.bootstrap` and nothing else wires."""

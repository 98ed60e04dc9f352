"""Problem packages shipped with hpsearch (run them with ``--problem problems.<name>``)."""

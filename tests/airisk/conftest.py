"""init_projects/ holds small products for `airisk init` to read, tests of their own included (the scanner
must skip a product's tests): they are its input, not this suite's tests, and one of them calls a real API."""

collect_ignore = ["init_projects"]

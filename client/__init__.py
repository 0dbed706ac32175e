"""The edge client: assignment, package download and unpack, python_env, dispatcher, task loop."""

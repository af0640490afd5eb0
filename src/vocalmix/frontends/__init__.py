"""Front ends over the library: the command line and the local web server."""

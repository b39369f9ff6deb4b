"""Wire protocol shared by the server and its clients (stdlib + numpy + pyzmq only)."""

"""The resident server: ``IMGCONV_SERVER=auto`` runs each call in a warm process.

- ``protocol``: where the socket lives, how messages are framed, what must
  match between a client and the server (imported by the client: keep it light).
- ``client``: hands one call (argv, cwd, environment, umask, stdio) to the
  server, or says that it must run in-process.
- ``daemon``: the warm parent that forks one child per call; ``warm`` what
  it preloads, ``admission`` whether a call can be served exactly,
  ``children`` its record of each forked child, ``child`` the child's side.
- ``commands``: ``imgconv server start|stop|status``.

Nothing here is imported by the library; the command line reaches it
through ``imgconv.launcher`` and the ``server`` command group.
"""

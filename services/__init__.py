"""The four gRPC services. Each folder holds a thin servicer over domain code in ``fusou`` and,
in ``main.py``, its ``SERVICE``: the declaration (``fusou.services.spec``) that ``fusou.app``
hosts when ``fusou serve`` names it."""

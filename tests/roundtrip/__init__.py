"""The round-trip matrix: per language, an identity function per calling-convention row, fed
edge and generated values (hypothesis); every value crosses exactly or is refused with the
documented error (``matrix.py``)."""

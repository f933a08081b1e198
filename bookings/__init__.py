"""The diary agents book into (issue 18): free times (``slots``), references, the records
(``models``), and the service that finds, books, moves and cancels without ever double-booking
(``service``). Every booking is a row of the store's ``bookings`` table; a persona whose
``[booking]`` backend is ``caldav`` also keeps a CalDAV calendar in step (docs/bookings.md).
"""

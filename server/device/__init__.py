"""The device listener (PROTOCOL §2): mutual-TLS enrollment, firmware images, the DES site files
(ENR-6) and EST identity certificates (ENR-8, RFC 7030). `app.create_device_app` builds it."""

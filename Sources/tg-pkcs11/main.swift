print("tg-pkcs11")

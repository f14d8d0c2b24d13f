/* The system PKCS#11 header (p11-kit's, standard names), the PKCS#11 3.0 additions it may lack,
 * and our public vendor header. Every Swift target imports this for CK_* types and constants. */
#ifndef CP11KIT_SHIM_H
#define CP11KIT_SHIM_H
#include <p11-kit-1/p11-kit/pkcs11.h> /* Debian libp11-kit-dev; header only, no link */
#include "pkcs11-v3.h"
#include "../../Include/tensorguard-pkcs11.h"
#endif

#include "CPKCS11.h"

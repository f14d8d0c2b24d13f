#ifndef CPKCS11_H
#define CPKCS11_H
#endif

/*
 * abi_slots_sessions.c — C_GetInfo, slots, tokens and mechanisms (test_general finds the slot every later
 * sweep uses); then C_InitToken, sessions, login and C_SetPIN (test_token_and_login hands back the
 * read-write user session the object and operation sweeps run in).
 */
#include "abi_sweep.h"

/* ------------------------------------------------------------------------------------------------ */
/* General, slots, tokens                                                                           */

static int blank_padded(const CK_UTF8CHAR *field, size_t width) {
    for (size_t i = 0; i < width; i++)
        if (field[i] == 0) return 0;
    return 1;
}

void test_general(void) {
    section = "general";
    CK_INFO info;
    EXPECT(f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    memset(&info, 0, sizeof info);
    EXPECT(f->C_GetInfo(&info), CKR_OK);
    CHECK(info.cryptokiVersion.major == 3 || (info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40));
    CHECK(blank_padded(info.manufacturerID, sizeof info.manufacturerID));
    CHECK(blank_padded(info.libraryDescription, sizeof info.libraryDescription));
    CHECK(info.flags == 0);

    section = "slots";
    CK_ULONG count = 0;
    EXPECT(f->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
    CK_SLOT_ID slots[8];
    EXPECT(f->C_GetSlotList(CK_TRUE, slots, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetSlotList(CK_FALSE, NULL, &count), CKR_OK);
    CHECK(count == 2); /* run.sh configures two tokens */
    CK_ULONG small = 0;
    EXPECT(f->C_GetSlotList(CK_TRUE, slots, &small), CKR_BUFFER_TOO_SMALL);
    CHECK(small == count);
    count = 8;
    EXPECT(f->C_GetSlotList(CK_TRUE, slots, &count), CKR_OK);
    CHECK(count >= 1);
    if (count >= 1) {
        slot = slots[0];
        have_slot = 1;
    }
    count = 8;
    EXPECT(f->C_GetSlotList(2 /* any nonzero CK_BBOOL is true */, slots, &count), CKR_OK);

    CK_SLOT_INFO slot_info;
    /* The second slot's name is "x" + 31 x "é" (63 bytes): the 64-byte field is that and one blank. */
    int long_name_seen = 0;
    for (CK_ULONG i = 0; i < count && i < 8; i++) {
        EXPECT(f->C_GetSlotInfo(slots[i], &slot_info), CKR_OK);
        if (slot_info.slotDescription[0] != 'x') continue;
        long_name_seen = 1;
        int ok = slot_info.slotDescription[63] == ' ';
        for (int j = 0; j < 31; j++)
            ok = ok && slot_info.slotDescription[1 + 2 * j] == 0xC3 && slot_info.slotDescription[2 + 2 * j] == 0xA9;
        CHECK(ok);
    }
    CHECK(long_name_seen);
    EXPECT(f->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetSlotInfo(slot, &slot_info), CKR_OK);
    CHECK(blank_padded(slot_info.slotDescription, sizeof slot_info.slotDescription));
    CHECK(blank_padded(slot_info.manufacturerID, sizeof slot_info.manufacturerID));
    CHECK(slot_info.flags & CKF_TOKEN_PRESENT);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        EXPECT(f->C_GetSlotInfo(bogus_handles[i], &slot_info), CKR_SLOT_ID_INVALID);
    }

    CK_TOKEN_INFO token_info;
    EXPECT(f->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetTokenInfo(slot, &token_info), CKR_OK);
    CHECK(blank_padded(token_info.label, sizeof token_info.label));
    CHECK(blank_padded(token_info.manufacturerID, sizeof token_info.manufacturerID));
    CHECK(blank_padded(token_info.model, sizeof token_info.model));
    CHECK(blank_padded(token_info.serialNumber, sizeof token_info.serialNumber));
    CHECK(blank_padded(token_info.utcTime, sizeof token_info.utcTime));
    CHECK(token_info.ulMinPinLen <= token_info.ulMaxPinLen);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        EXPECT(f->C_GetTokenInfo(bogus_handles[i], &token_info), CKR_SLOT_ID_INVALID);
    }

    section = "mechanisms";
    count = 0;
    EXPECT(f->C_GetMechanismList(slot, NULL, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetMechanismList(slot, NULL, &count), CKR_OK);
    CHECK(count >= 4);
    CK_MECHANISM_TYPE mechs[256];
    small = 1;
    EXPECT(f->C_GetMechanismList(slot, mechs, &small), CKR_BUFFER_TOO_SMALL);
    CHECK(small == count);
    count = 256;
    EXPECT(f->C_GetMechanismList(slot, mechs, &count), CKR_OK);
    int has_n2he = 0, has_gcm = 0;
    for (CK_ULONG i = 0; i < count && i < 256; i++) {
        if (mechs[i] == CKM_TG_N2HE_LWE1) has_n2he = 1;
        if (mechs[i] == CKM_AES_GCM) has_gcm = 1;
    }
    CHECK(has_n2he);
    CHECK(has_gcm);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        count = 256;
        EXPECT(f->C_GetMechanismList(bogus_handles[i], mechs, &count), CKR_SLOT_ID_INVALID);
    }
    CK_MECHANISM_INFO mech_info;
    EXPECT(f->C_GetMechanismInfo(slot, CKM_AES_GCM, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetMechanismInfo(slot, CKM_AES_GCM, &mech_info), CKR_OK);
    CHECK(mech_info.flags & CKF_ENCRYPT);
    EXPECT(f->C_GetMechanismInfo(slot, CKM_TG_N2HE_LWE2, &mech_info), CKR_OK);
    EXPECT(f->C_GetMechanismInfo(slot, 0x7FFFFFF0UL, &mech_info), CKR_MECHANISM_INVALID);
    EXPECT(f->C_GetMechanismInfo(slot, ULONG_MAX, &mech_info), CKR_MECHANISM_INVALID);
    EXPECT(f->C_GetMechanismInfo((CK_ULONG)1 << 40, CKM_AES_GCM, &mech_info), CKR_SLOT_ID_INVALID);
}

/* ------------------------------------------------------------------------------------------------ */
/* Token initialisation, sessions, login                                                            */

void test_token_and_login(CK_SESSION_HANDLE *rw_out) {
    section = "C_InitToken";
    CK_UTF8CHAR label[32];
    memset(label, ' ', sizeof label);
    memcpy(label, "abi-test", 8);
    EXPECT(f->C_InitToken(slot, NULL, 4, label), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitToken(slot, PIN(so_pin), NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so_pin, ULONG_MAX, label), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitToken((CK_ULONG)1 << 40, PIN(so_pin), label), CKR_SLOT_ID_INVALID);
    CK_SESSION_HANDLE s;
    /* A fresh token may refuse sessions (SoftHSM: CKR_TOKEN_NOT_RECOGNIZED); if it opens one, the
     * token cannot be initialised under it. */
    CK_RV open_rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
    const CK_RV open_ok[] = { CKR_OK, CKR_TOKEN_NOT_RECOGNIZED };
    expect_rv("C_OpenSession(uninitialised token)", __LINE__, open_rv, open_ok, 2);
    if (open_rv == CKR_OK) EXPECT(f->C_InitToken(slot, PIN(so_pin), label), CKR_SESSION_EXISTS);
    EXPECT(f->C_CloseAllSessions(slot), CKR_OK);
    EXPECT(f->C_InitToken(slot, PIN(so_pin), label), CKR_OK);
    CK_TOKEN_INFO token_info;
    EXPECT(f->C_GetTokenInfo(slot, &token_info), CKR_OK);
    CHECK(token_info.flags & CKF_TOKEN_INITIALIZED);
    CHECK(memcmp(token_info.label, label, sizeof label) == 0);
    CHECK(!(token_info.flags & CKF_USER_PIN_INITIALIZED));

    section = "sessions";
    CK_SESSION_HANDLE ro = 0, rw = 0;
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_OpenSession(slot, 0, NULL, NULL, &ro), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    EXPECT(f->C_OpenSession(slot, CKF_RW_SESSION, NULL, NULL, &ro), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        if (bogus_handles[i] == slot) continue;
        EXPECT(f->C_OpenSession(bogus_handles[i], CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_SLOT_ID_INVALID);
        EXPECT(f->C_CloseAllSessions(bogus_handles[i]), CKR_SLOT_ID_INVALID);
    }
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK);
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
    CHECK(ro != 0 && rw != 0 && ro != rw);
    CK_SESSION_INFO si;
    EXPECT(f->C_GetSessionInfo(rw, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_GetSessionInfo(rw, &si), CKR_OK);
    CHECK(si.slotID == slot && si.state == CKS_RW_PUBLIC_SESSION && (si.flags & CKF_RW_SESSION));
    EXPECT(f->C_GetSessionInfo(ro, &si), CKR_OK);
    CHECK(si.state == CKS_RO_PUBLIC_SESSION && !(si.flags & CKF_RW_SESSION));

    section = "login";
    /* SO with a read-only session open. */
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_SESSION_READ_ONLY_EXISTS);
    EXPECT(f->C_CloseSession(ro), CKR_OK);
    EXPECT(f->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_USER_PIN_NOT_INITIALIZED);
    EXPECT(f->C_Login(rw, CKU_SO, NULL, 4), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Login(rw, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, ULONG_MAX), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_Login(rw, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, (CK_ULONG)1 << 40), CKR_PIN_LEN_RANGE);
    EXPECT(f->C_Login(rw, 7 /* no such user type */, PIN(so_pin)), CKR_USER_TYPE_INVALID);
    EXPECT(f->C_Login(rw, CKU_CONTEXT_SPECIFIC, PIN(so_pin)), CKR_OPERATION_NOT_INITIALIZED, CKR_USER_TYPE_INVALID);
    EXPECT(f->C_Login(rw, CKU_SO, PIN("wrong-so-pin")), CKR_PIN_INCORRECT);
    EXPECT(f->C_InitPIN(rw, PIN(user_pin)), CKR_USER_NOT_LOGGED_IN);
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_OK);
    EXPECT(f->C_GetSessionInfo(rw, &si), CKR_OK);
    CHECK(si.state == CKS_RW_SO_FUNCTIONS);
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_USER_ALREADY_LOGGED_IN);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_SESSION_READ_WRITE_SO_EXISTS);
    EXPECT(f->C_InitPIN(rw, NULL, 4), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_InitPIN(rw, (CK_UTF8CHAR_PTR)user_pin, ULONG_MAX), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++) EXPECT(f->C_InitPIN(bogus_handles[i], PIN(user_pin)), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_InitPIN(rw, PIN(user_pin)), CKR_OK);
    EXPECT(f->C_Logout(rw), CKR_OK);
    EXPECT(f->C_Logout(rw), CKR_USER_NOT_LOGGED_IN);
    for (int i = 0; i < BOGUS_COUNT; i++) {
        EXPECT(f->C_Login(bogus_handles[i], CKU_USER, PIN(user_pin)), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_Logout(bogus_handles[i]), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_GetSessionInfo(bogus_handles[i], &si), CKR_SESSION_HANDLE_INVALID);
        EXPECT(f->C_CloseSession(bogus_handles[i]), CKR_SESSION_HANDLE_INVALID);
    }
    EXPECT(f->C_Login(rw, CKU_USER, PIN("wrong-user-pin")), CKR_PIN_INCORRECT);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_OK);
    EXPECT(f->C_Login(rw, CKU_USER, PIN(user_pin)), CKR_USER_ALREADY_LOGGED_IN);
    EXPECT(f->C_Login(rw, CKU_SO, PIN(so_pin)), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    EXPECT(f->C_GetSessionInfo(rw, &si), CKR_OK);
    CHECK(si.state == CKS_RW_USER_FUNCTIONS);

    section = "C_SetPIN";
    EXPECT(f->C_SetPIN(rw, NULL, 4, PIN(user_pin)), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SetPIN(rw, PIN(user_pin), NULL, 4), CKR_ARGUMENTS_BAD);
    EXPECT(f->C_SetPIN(rw, (CK_UTF8CHAR_PTR)user_pin, ULONG_MAX, PIN(user_pin)), CKR_ARGUMENTS_BAD);
    for (int i = 0; i < BOGUS_COUNT; i++)
        EXPECT(f->C_SetPIN(bogus_handles[i], PIN(user_pin), PIN(user_pin)), CKR_SESSION_HANDLE_INVALID);
    EXPECT(f->C_SetPIN(rw, PIN("wrong-user-pin"), PIN(user_pin)), CKR_PIN_INCORRECT);
    EXPECT(f->C_SetPIN(rw, PIN(user_pin), PIN(user_pin)), CKR_OK);
    *rw_out = rw;
}

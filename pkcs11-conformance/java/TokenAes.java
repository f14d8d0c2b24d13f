// Conformance (java suite): a token AES key through Java's SunPKCS11 provider, used with AES/GCM/NoPadding.
//
//   java TokenAes gen   CONF PIN DIR   log in, KeyGenerator "AES" (256) on the provider, AES/GCM round trip with
//                                      that key (and against SunJCE when the key's value is readable), store it in
//                                      the PKCS11 KeyStore as token key "java-aes", read it back, AES/GCM with
//                                      the token key; writes DIR/java-aes.iv, .aad, .ct, .pt for `check`
//   java TokenAes check CONF PIN DIR   a new process: log in, find "java-aes" in the KeyStore and decrypt
//                                      DIR/java-aes.ct to DIR/java-aes.pt; a flipped tag bit must fail
//
// Prints one "ok ..." line per step; any failure is an exception and exit status 1.
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.Provider;
import java.security.SecureRandom;
import java.security.Security;
import java.util.Arrays;
import java.util.Collections;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.KeyGenerator;
import javax.crypto.SecretKey;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

public final class TokenAes {
    static final String ALIAS = "java-aes";
    static final String GCM = "AES/GCM/NoPadding";

    public static void main(String[] args) throws Exception {
        if (args.length != 4) throw new IllegalArgumentException("usage: TokenAes gen|check CONF PIN DIR");
        Provider p = Security.getProvider("SunPKCS11").configure(args[1]);
        Security.addProvider(p);
        System.out.println("ok provider " + p.getName() + ": " + p.getInfo());
        char[] pin = args[2].toCharArray();
        Path dir = Path.of(args[3]);
        KeyStore ks = KeyStore.getInstance("PKCS11", p);
        ks.load(null, pin); // C_Login
        System.out.println("ok logged in; keystore entries: " + Collections.list(ks.aliases()));
        switch (args[0]) {
            case "gen": gen(p, ks, pin, dir); break;
            case "check": check(p, ks, dir); break;
            default: throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    static void gen(Provider p, KeyStore ks, char[] pin, Path dir) throws Exception {
        SecureRandom rnd = new SecureRandom();
        KeyGenerator kg = KeyGenerator.getInstance("AES", p);
        kg.init(256);
        SecretKey key = kg.generateKey();
        if (key.getClass().getName().indexOf("P11") < 0) throw new AssertionError("not a PKCS#11 key: " + key.getClass());
        System.out.println("ok KeyGenerator AES-256 on the provider: " + key);

        byte[] plain = new byte[1000]; rnd.nextBytes(plain);
        byte[] aad = "java conformance aad".getBytes("UTF-8");
        byte[] iv = new byte[12]; rnd.nextBytes(iv);
        byte[] ct = gcm(p, Cipher.ENCRYPT_MODE, key, iv, aad, plain);
        if (ct.length != plain.length + 16) throw new AssertionError("ciphertext length " + ct.length);
        byte[] back = gcm(p, Cipher.DECRYPT_MODE, key, iv, aad, ct);
        if (!Arrays.equals(plain, back)) throw new AssertionError("GCM round trip differs");
        System.out.println("ok AES/GCM/NoPadding encrypt + decrypt round trip (generated key)");
        byte[] value = key.getEncoded();
        if (value != null) {
            byte[] ref = gcm(Security.getProvider("SunJCE"), Cipher.ENCRYPT_MODE, new SecretKeySpec(value, "AES"), iv, aad, plain);
            if (!Arrays.equals(ref, ct)) throw new AssertionError("GCM ciphertext differs from SunJCE's");
            System.out.println("ok ciphertext = SunJCE's for the same key, IV and AAD");
        } else {
            System.out.println("ok (key value not readable: no SunJCE cross-check)");
        }

        // Persist it: the PKCS11 KeyStore makes a token object labelled with the alias.
        ks.setEntry(ALIAS, new KeyStore.SecretKeyEntry(key), null);
        ks.load(null, pin);
        if (!ks.isKeyEntry(ALIAS)) throw new AssertionError(ALIAS + " not in the keystore after setEntry");
        SecretKey tokenKey = (SecretKey) ks.getKey(ALIAS, null);
        System.out.println("ok stored as token key " + ALIAS + ": " + tokenKey);
        byte[] iv2 = new byte[12]; rnd.nextBytes(iv2);
        byte[] ct2 = gcm(p, Cipher.ENCRYPT_MODE, tokenKey, iv2, aad, plain);
        if (!Arrays.equals(plain, gcm(p, Cipher.DECRYPT_MODE, tokenKey, iv2, aad, ct2)))
            throw new AssertionError("GCM round trip with the token key differs");
        if (!Arrays.equals(plain, gcm(p, Cipher.DECRYPT_MODE, key, iv2, aad, ct2)))
            throw new AssertionError("the token key is not the generated key");
        System.out.println("ok AES/GCM/NoPadding round trip with the token key (same key as generated)");
        Files.write(dir.resolve(ALIAS + ".iv"), iv2);
        Files.write(dir.resolve(ALIAS + ".aad"), aad);
        Files.write(dir.resolve(ALIAS + ".ct"), ct2);
        Files.write(dir.resolve(ALIAS + ".pt"), plain);
    }

    static void check(Provider p, KeyStore ks, Path dir) throws Exception {
        if (!ks.isKeyEntry(ALIAS)) throw new AssertionError(ALIAS + " not in the keystore of a new process");
        SecretKey key = (SecretKey) ks.getKey(ALIAS, null);
        byte[] iv = Files.readAllBytes(dir.resolve(ALIAS + ".iv"));
        byte[] aad = Files.readAllBytes(dir.resolve(ALIAS + ".aad"));
        byte[] ct = Files.readAllBytes(dir.resolve(ALIAS + ".ct"));
        byte[] plain = gcm(p, Cipher.DECRYPT_MODE, key, iv, aad, ct);
        if (!Arrays.equals(plain, Files.readAllBytes(dir.resolve(ALIAS + ".pt"))))
            throw new AssertionError("decrypted text differs");
        System.out.println("ok token key " + ALIAS + " found by a new process decrypts the earlier ciphertext");
        byte[] bad = ct.clone();
        bad[bad.length - 1] ^= 1;
        try {
            gcm(p, Cipher.DECRYPT_MODE, key, iv, aad, bad);
            throw new AssertionError("a flipped tag bit decrypted");
        } catch (AEADBadTagException expected) {
            System.out.println("ok a flipped tag bit: AEADBadTagException (" + expected.getMessage() + ")");
        }
    }

    static byte[] gcm(Provider p, int mode, SecretKey key, byte[] iv, byte[] aad, byte[] in) throws Exception {
        Cipher c = Cipher.getInstance(GCM, p);
        c.init(mode, key, new GCMParameterSpec(128, iv));
        c.updateAAD(aad);
        return c.doFinal(in);
    }
}

/*
 * bcryptprimitives.dll for Wine, which (as of Wine 8) has no such DLL.
 *
 * Rust's standard library on Windows imports ProcessPrng from
 * bcryptprimitives.dll for its random numbers (HashMap seeds and the like),
 * so without it no Rust test binary even starts under Wine. This shim exports
 * ProcessPrng over advapi32's RtlGenRandom (SystemFunction036), which Wine
 * has. CI only: it is built by .ci/windows-tests into the Wine prefix's
 * system32 and is never part of the crate.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a ULONG length: fill larger requests in pieces. */
    while (length > 0) {
        ULONG piece = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}

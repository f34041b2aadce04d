/*
 * Unlocking a region that holds no lock: Windows answers ERROR_NOT_LOCKED
 * (158), Wine 8 ERROR_LOCK_VIOLATION (33). std's File::unlock unlocks twice
 * (a handle may hold an exclusive and a shared lock at once) and accepts only
 * ERROR_NOT_LOCKED from the second call, so under Wine it fails after every
 * successful unlock. packlock's Sidecar::unlock accepts both answers.
 *
 * Under Wine this prints: second UnlockFile (nothing locked): 0 (error 33)
 */
#include <windows.h>
#include <stdio.h>

int main(void)
{
    HANDLE h = CreateFileA("unlock-twice.lock", GENERIC_READ | GENERIC_WRITE,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_ALWAYS, 0, NULL);
    OVERLAPPED o = {0};
    BOOL ok = LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK, 0, MAXDWORD, MAXDWORD, &o);
    printf("LockFileEx: %d (error %lu)\n", ok, ok ? 0 : GetLastError());
    ok = UnlockFile(h, 0, 0, MAXDWORD, MAXDWORD);
    printf("first UnlockFile: %d (error %lu)\n", ok, ok ? 0 : GetLastError());
    ok = UnlockFile(h, 0, 0, MAXDWORD, MAXDWORD);
    printf("second UnlockFile (nothing locked): %d (error %lu)\n", ok, ok ? 0 : GetLastError());
    CloseHandle(h);
    DeleteFileA("unlock-twice.lock");
    return 0;
}

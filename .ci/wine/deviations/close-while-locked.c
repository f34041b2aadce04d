/*
 * Opening and closing a file many times while the process always holds some
 * lock on it. Closing a Unix descriptor drops the process's POSIX locks on
 * the file, so Wine 8 keeps the descriptor of every handle closed meanwhile
 * until no lock on the file remains. A process whose locks on a file always
 * overlap thus runs Wine out of descriptors (ERROR_TOO_MANY_OPEN_FILES, 4)
 * after about RLIMIT_NOFILE opens. Windows closes handles for real.
 *
 * packlock opens the lock file once per acquire to check that it is still at
 * its path, so tests/shared.rs runs its two churn tests with fewer rounds on
 * Windows. Under Wine with a limit of 20000 descriptors each thread prints
 * about "round 3200: open fails with error 4".
 */
#include <windows.h>
#include <stdio.h>

static volatile LONG failed;

static DWORD WINAPI churn(LPVOID unused)
{
    HANDLE locker = CreateFileA("close-while-locked.lock", GENERIC_READ | GENERIC_WRITE,
        FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_ALWAYS, 0, NULL);
    for (int round = 0; round < 60000 && !failed; round++) {
        OVERLAPPED o = {0};
        LockFileEx(locker, 0, 0, MAXDWORD, MAXDWORD, &o);
        HANDLE probe = CreateFileA("close-while-locked.lock", GENERIC_READ,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
            FILE_FLAG_BACKUP_SEMANTICS, NULL);
        if (probe == INVALID_HANDLE_VALUE) {
            printf("round %d: open fails with error %lu\n", round, GetLastError());
            InterlockedIncrement(&failed);
            break;
        }
        CloseHandle(probe);
        UnlockFile(locker, 0, 0, MAXDWORD, MAXDWORD);
    }
    CloseHandle(locker);
    return 0;
}

int main(void)
{
    HANDLE threads[6];
    for (int t = 0; t < 6; t++)
        threads[t] = CreateThread(NULL, 0, churn, NULL, 0, NULL);
    WaitForMultipleObjects(6, threads, TRUE, INFINITE);
    printf(failed ? "failed\n" : "6 threads x 60000 rounds: ok\n");
    DeleteFileA("close-while-locked.lock");
    return 0;
}

/*
 * Deleting or renaming over a file that is open (with FILE_SHARE_DELETE, as
 * Rust's std opens files). Windows 10 and later on NTFS take the name away at
 * once (POSIX semantics, which std's remove_file and rename ask for). Wine 8
 * refuses POSIX semantics (ERROR_INVALID_PARAMETER), keeps a deleted open
 * file openable at its path until its last handle closes, and refuses to
 * rename over it (ERROR_ACCESS_DENIED). So under Wine a held lock file cannot
 * be replaced, and tests/basics.rs skips the tests of what replacing does.
 *
 * Under Wine this prints:
 *   DeleteFile of an open file: 1 (error 0)
 *   open the path again: succeeds
 *   POSIX-semantics delete of an open file: 0 (error 87)
 *   rename over an open file: 0 (error 5)
 */
#include <windows.h>
#include <stdio.h>

#define FILE_DISPOSITION_INFO_EX_CLASS ((FILE_INFO_BY_HANDLE_CLASS)21)
#define FLAG_DELETE 0x1
#define FLAG_POSIX_SEMANTICS 0x2

static HANDLE open_shared(const char *path, DWORD access, DWORD disposition)
{
    return CreateFileA(path, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        NULL, disposition, 0, NULL);
}

int main(void)
{
    HANDLE held = open_shared("deleted.lock", GENERIC_READ | GENERIC_WRITE, CREATE_ALWAYS);
    BOOL ok = DeleteFileA("deleted.lock");
    printf("DeleteFile of an open file: %d (error %lu)\n", ok, ok ? 0 : GetLastError());
    HANDLE again = open_shared("deleted.lock", GENERIC_READ, OPEN_EXISTING);
    printf("open the path again: %s\n", again == INVALID_HANDLE_VALUE ? "fails" : "succeeds");
    if (again != INVALID_HANDLE_VALUE)
        CloseHandle(again);
    CloseHandle(held);

    held = open_shared("posix.lock", GENERIC_READ | GENERIC_WRITE, CREATE_ALWAYS);
    HANDLE deleter = open_shared("posix.lock", DELETE, OPEN_EXISTING);
    ULONG flags = FLAG_DELETE | FLAG_POSIX_SEMANTICS;
    ok = SetFileInformationByHandle(deleter, FILE_DISPOSITION_INFO_EX_CLASS, &flags, sizeof flags);
    printf("POSIX-semantics delete of an open file: %d (error %lu)\n", ok,
        ok ? 0 : GetLastError());
    CloseHandle(deleter);
    CloseHandle(held);
    DeleteFileA("posix.lock");

    held = open_shared("renamed-over.lock", GENERIC_READ | GENERIC_WRITE, CREATE_ALWAYS);
    CloseHandle(open_shared("fresh", GENERIC_WRITE, CREATE_ALWAYS));
    ok = MoveFileExA("fresh", "renamed-over.lock", MOVEFILE_REPLACE_EXISTING);
    printf("rename over an open file: %d (error %lu)\n", ok, ok ? 0 : GetLastError());
    CloseHandle(held);
    DeleteFileA("renamed-over.lock");
    DeleteFileA("fresh");
    return 0;
}

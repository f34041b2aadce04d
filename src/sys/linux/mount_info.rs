//! `/proc/self/mountinfo`: the type of the file system on a device.

use super::{major, minor};

/// The type of the file system mounted from device `dev` (`nfs4`, `ext4`,
/// `fuse.sshfs`, ...), if the mount table names it.
pub(crate) fn file_system_type(dev: u64) -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    fs_type_of(&mountinfo, dev)
}

/// The type of the file system mounted from device `dev`, from
/// `/proc/self/mountinfo` lines such as
/// `36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw`.
fn fs_type_of(mountinfo: &str, dev: u64) -> Option<String> {
    let device = format!("{}:{}", major(dev), minor(dev));
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        (mount.split_whitespace().nth(2)? == device).then_some(())?;
        fs.split_whitespace().next().map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::fs_type_of;

    #[test]
    fn finds_the_file_system_type_by_device() {
        let mountinfo = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                         40 27 0:52 / /mnt/share rw,relatime shared:5 - nfs4 srv:/export rw\n\
                         41 27 254:0 / / rw - ext4 /dev/vda rw\n";
        assert_eq!(fs_type_of(mountinfo, 52).as_deref(), Some("nfs4"));
        assert_eq!(fs_type_of(mountinfo, 254 << 8).as_deref(), Some("ext4"));
        assert_eq!(fs_type_of(mountinfo, 99), None);
    }
}

"""Our patches to CRIU 4.2.1 (scripts/patches/criu-4.2.1, applied by scripts/bootstrap): they
apply to Debian's tarball, the lock table's name is no longer cut, and the CRIU that bootstrap
built carries exactly this patch set."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHES = ROOT / "scripts" / "patches" / "criu-4.2.1"
TARBALL = ROOT / ".deps" / "src" / "criu_4.2.1.orig.tar.xz"
STAMP = ROOT / ".deps" / "criu-4.2.1" / "patches.sha256"


def _patches() -> list[Path]:
    return sorted(PATCHES.glob("*.patch"))


BOOTSTRAP = ROOT / "scripts" / "bootstrap"


def make_flags() -> str:
    """scripts/bootstrap's CRIU_MAKE_FLAGS."""
    for line in BOOTSTRAP.read_text().splitlines():
        if line.startswith("CRIU_MAKE_FLAGS="):
            return line.split("=", 1)[1].strip('"')
    raise AssertionError("scripts/bootstrap sets no CRIU_MAKE_FLAGS")


def patch_set_hash(patches: list[Path]) -> str:
    """What scripts/bootstrap's criu_patch_set prints: 'make FLAGS', then each patch's name on a
    line and its bytes."""
    h = hashlib.sha256(f"make {make_flags()}\n".encode())
    for p in patches:
        h.update(p.name.encode() + b"\n" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def patched_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not TARBALL.exists():
        pytest.skip("CRIU's tarball is not in .deps/src (scripts/bootstrap downloads it)")
    base = tmp_path_factory.mktemp("criu")
    subprocess.run(["tar", "-C", str(base), "-xJf", str(TARBALL)], check=True)
    tree = base / "criu-4.2.1"
    for p in _patches():
        done = subprocess.run(
            ["patch", "-d", str(tree), "-p1", "--forward", "-s"],
            input=p.read_bytes(),
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0, f"{p.name}: {done.stdout!r} {done.stderr!r}"
    return tree


def test_there_is_the_lock_table_patch() -> None:
    names = [p.name for p in _patches()]
    assert "0001-netfilter-do-not-truncate-the-nftables-lock-table-name.patch" in names


def test_the_lock_tables_name_fits_a_whole_run_id(patched_tree: Path) -> None:
    net = (patched_tree / "criu" / "net.c").read_text()
    netfilter = (patched_tree / "criu" / "netfilter.c").read_text()
    header = (patched_tree / "criu" / "include" / "netfilter.h").read_text()
    assert "char table[32]" not in net + netfilter
    assert (net + netfilter).count("char table[NFTABLES_TABLE_NAME_LEN]") == 4
    assert "RUN_ID_HASH_LENGTH" in header
    assert "ret >= n" in netfilter  # a name that does not fit is an error, not a cut
    # "inet CRIU-" + a 36-character run id + NUL
    run_id = "a0adb940-722f-463f-94f3-dd7314d9fcac"
    assert len(f"inet CRIU-{run_id}") + 1 == len("inet CRIU-") + 37


def test_the_kdat_cache_is_kept_for_this_boot_where_run_is_no_tmpfs(patched_tree: Path) -> None:
    kerndat = (patched_tree / "criu" / "kerndat.c").read_text()
    assert '"/proc/sys/kernel/random/boot_id"' in kerndat
    assert '"%s.%s", KERNDAT_CACHE_FILE, boot_id' in kerndat  # the cache named for the boot
    assert "!kdat_file_per_boot && (fstatfs" in kerndat  # tmpfs still required for /run/criu.kdat
    assert "unlink(kdat_file_tmp);" in kerndat  # a failed save leaves no .tmp behind


def test_criu_is_built_without_gnutls() -> None:
    """Its constructors cost every CRIU start 1.1 ms; only `--tls` page servers need it."""
    assert "NO_GNUTLS=1" in make_flags().split()
    binary = ROOT / ".deps" / "criu-4.2.1" / "sbin" / "criu"
    if not binary.exists():
        pytest.skip("no CRIU built by scripts/bootstrap here")
    linked = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True)
    assert "libgnutls" not in linked.stdout and "libnftables" in linked.stdout


def test_the_built_criu_carries_this_patch_set() -> None:
    if not STAMP.exists():
        pytest.skip("no CRIU built by scripts/bootstrap here")
    assert STAMP.read_text().strip() == patch_set_hash(_patches()), (
        "the CRIU in .deps was built with other patches: run scripts/bootstrap"
    )


LAZY_PATCH = "0006-lazy-pages-keep-background-requests-in-flight.patch"


def test_there_is_the_lazy_pages_in_flight_patch() -> None:
    assert LAZY_PATCH in [p.name for p in _patches()]


def test_the_lazy_pages_daemon_keeps_requests_in_flight_and_sleeps_meanwhile(
    patched_tree: Path,
) -> None:
    uffd = (patched_tree / "criu" / "uffd.c").read_text()
    xfer = (patched_tree / "criu" / "page-xfer.c").read_text()
    # the background pull no longer waits for every reply before it asks for more ...
    assert "list_empty(&lpi->iovs) && list_empty(&lpi->reqs)" not in uffd
    # 128 KiB: a fault waits behind at most that (1 MiB stalled the restored service)
    assert "#define MAX_INFLIGHT_LEN (128 << 10)" in uffd
    # (0009: up to 1 MiB while the small VMAs, which the faults need too, are pulled)
    assert "limit = lpi->small_pulled ? MAX_INFLIGHT_LEN : SMALL_INFLIGHT_LEN;" in uffd
    assert "inflight < limit" in uffd and "xfer_pages(lpi, limit - inflight)" in uffd
    # ... nor spins on epoll while they are on their way: a completed reply wakes it
    assert "poll_timeout = LAZY_IDLE_POLL_MS;" in uffd
    reply = xfer[xfer.index("static int page_server_async_read") :]
    reply = reply[: reply.index("\n}\n")]
    assert "return 1;" in reply


FAULT_PATCH = "0007-lazy-pages-a-fault-asks-for-the-pages-after-it-too.patch"


def test_a_page_fault_asks_for_256_kib_from_the_faulting_page_within_its_lazy_range(
    patched_tree: Path,
) -> None:
    assert FAULT_PATCH in [p.name for p in _patches()]
    uffd = (patched_tree / "criu" / "uffd.c").read_text()
    fault = uffd[uffd.index("static int handle_page_fault") :]
    fault = fault[: fault.index("\n}\n")]
    assert "#define FAULT_AROUND_LEN (256 << 10)" in uffd
    # from the faulting page to 256 KiB on, never past the range of pages not yet asked for
    assert "end = min((__u64)iov->end, address + FAULT_AROUND_LEN);" in fault
    assert "extract_range(iov, address, end)" in fault
    assert "(end - address) / PAGE_SIZE" in fault
    assert "address + PAGE_SIZE" not in fault  # no longer the one page


TMPFS_PATCH = "0008-tmpfs-an-empty-tmpfs-is-dumped-and-restored-without-tar.patch"


def test_an_empty_tmpfs_goes_without_tar_and_keeps_its_roots_mode_owner_and_time(
    patched_tree: Path,
) -> None:
    """(Live: test_migration_hops, an empty /tmp keeps its mode 1770 over three hops, a file in
    /run still comes with tar.)"""
    assert TMPFS_PATCH in [p.name for p in _patches()]
    fs = (patched_tree / "criu" / "filesystems.c").read_text()
    dump = fs[fs.index("static int tmpfs_dump") :]
    dump = dump[: dump.index("\n}\n")]
    # only an empty root, and never under a user namespace (tar would see other owners)
    assert "!(root_ns_mask & CLONE_NEWUSER) && tmpfs_is_empty(fd)" in dump
    assert dump.index("tmpfs_is_empty(fd)") < dump.index('"tar"')
    assert '#define EMPTY_TMPFS_MAGIC "CRIU-EMPTY-TMPFS 1"' in fs
    assert "st.st_mode & 07777, st.st_uid" in fs and "st.st_mtim.tv_sec" in fs
    restore = fs[fs.index("static int tmpfs_restore") :]
    restore = restore[: restore.index("\n}\n")]
    assert restore.index("empty_tmpfs_restore(pm, img)") < restore.index('"tar"')
    empty = fs[fs.index("static int empty_tmpfs_restore") :]
    empty = empty[: empty.index("\n}\n")]
    assert "chown(root, uid, gid) || chmod(root, mode)" in empty and "utimensat(" in empty
    assert "pread(img_raw_fd(img)" in empty  # tar still reads any other image from its start


SIMPLE_TMPFS_PATCH = "0012-tmpfs-a-tmpfs-of-links-and-device-nodes-goes-as-a-list-without-tar.patch"


def test_a_tmpfs_of_links_and_device_nodes_goes_as_a_list_and_anything_else_to_tar(
    patched_tree: Path,
) -> None:
    """(Live: test_migration_live's test_the_containers_dev_comes_back_entry_for_entry: /dev comes
    back entry for entry, times to the nanosecond, from a list; with a file of data, by tar.)"""
    assert SIMPLE_TMPFS_PATCH in [p.name for p in _patches()]
    fs = (patched_tree / "criu" / "filesystems.c").read_text()
    dump = fs[fs.index("static int tmpfs_dump") :]
    dump = dump[: dump.index("\n}\n")]
    # after the empty case, never under a user namespace, and before tar
    assert dump.index("tmpfs_is_empty(fd)") < dump.index("simple_tmpfs_dump(pm, fd)")
    assert dump.index("simple_tmpfs_dump(pm, fd)") < dump.index('"tar"')
    walk = fs[fs.index("static int simple_walk") :]
    walk = walk[: walk.index("\n}\n")]
    assert "if (st.st_size)" in walk  # a file with data: tar
    # another filesystem inside, or a hard link: tar
    assert "st.st_dev != dev || (!S_ISDIR(st.st_mode) && st.st_nlink != 1)" in walk
    assert "default:\n\t\t\tret = 1;" in walk  # a socket: tar
    restore = fs[fs.index("static int tmpfs_restore") :]
    restore = restore[: restore.index("\n}\n")]
    assert restore.index("simple_tmpfs_restore(pm, img)") < restore.index('"tar"')
    assert "AT_SYMLINK_NOFOLLOW" in fs and "simple_path_ok(e->path)" in fs


NO_BREAKPOINTS_PATCH = "0013-parasite-no-breakpoints-option.patch"


def test_no_breakpoints_steps_the_parasites_exit_and_the_restored_tasks(patched_tree: Path) -> None:
    """(Live: every dump and restore of test_migration_live runs with `no-breakpoints` in its
    criu.conf; their logs say "Force no-breakpoints", see the patch for the measured gain.)"""
    assert NO_BREAKPOINTS_PATCH in [p.name for p in _patches()]
    criu = patched_tree / "criu"
    assert 'BOOL_OPT("breakpoints", &opts.breakpoints)' in (criu / "config.c").read_text()
    assert "opts.breakpoints = true;" in (criu / "config.c").read_text()  # the default
    infect = (criu / "parasite-syscall.c").read_text()
    flag = "!kdat.has_breakpoints || !opts.breakpoints)\n\t\tictx->flags |= INFECT_NO_BREAKPOINTS"
    assert flag in infect
    restore = (criu / "cr-restore.c").read_text()
    assert "bool nobp = fault_injected(FI_NO_BREAKPOINTS) || !kdat.has_breakpoints || " in restore
    assert "!opts.breakpoints;" in restore


SMALL_FIRST_PATCH = "0009-lazy-pages-pull-the-small-vmas-first.patch"


def test_the_background_pull_takes_the_small_vmas_first(patched_tree: Path) -> None:
    """(Live: test_bench_migration's post-copy row answers within its bound after the restore;
    the client's wait after the restore went from a median 195 to 137 ms, see the patch.)"""
    assert SMALL_FIRST_PATCH in [p.name for p in _patches()]
    uffd = (patched_tree / "criu" / "uffd.c").read_text()
    assert "#define BULK_VMA_LEN (8 << 20)" in uffd
    assert "#define SMALL_INFLIGHT_LEN (1 << 20)" in uffd
    collect = uffd[uffd.index("static int collect_iovs") :]
    collect = collect[: collect.index("\n}\n")]
    # a range is bulk by the lazy bytes of its VMA, counted as the ranges are made
    assert "vma_lazy[n_vma] += len;" in collect
    assert "vma_lazy[n_vma] >= BULK_VMA_LEN" in collect and "iov->bulk = true;" in collect
    assert "xfree(vma_lazy);" in collect
    pick = uffd[uffd.index("static struct lazy_iov *pick_next_range") :]
    pick = pick[: pick.index("\n}\n")]
    assert "if (!iov->bulk)" in pick and "lpi->small_pulled = true;" in pick
    assert pick.rstrip().endswith("return list_first_entry(&lpi->iovs, struct lazy_iov, l);")
    # a split range stays in its class, and so does a child's copy
    split = uffd[uffd.index("static int split_iov") :]
    assert "new->bulk = iov->bulk;" in split[: split.index("\n}\n")]
    copy = uffd[uffd.index("static int __copy_iov_list") :]
    assert "new->bulk = iov->bulk;" in copy[: copy.index("\n}\n")]


CONNTRACK_PATCH = "0010-net-no-conntrack-dump-of-a-netns-that-tracks-nothing.patch"


def test_a_netns_without_tracked_connections_skips_the_conntrack_dumps(
    patched_tree: Path,
) -> None:
    assert CONNTRACK_PATCH in [p.name for p in _patches()]
    net = (patched_tree / "criu" / "net.c").read_text()
    check = net[net.index("static bool netns_tracks_connections") :]
    check = check[: check.index("\n}\n")]
    assert '"/proc/sys/net/netfilter/nf_conntrack_count"' in check
    assert check.count("return true;") == 3  # unreadable: dump as before
    dump = net[net.index("int dump_net_ns(struct ns_id *ns)") :]
    dump = dump[: dump.index("\n}\n")]
    assert "if (!ret && netns_tracks_connections()) {" in dump
    assert dump.index("netns_tracks_connections()") < dump.index("CR_FD_NETNF_CT")
    assert dump.index("CR_FD_NETNF_CT") < dump.index("CR_FD_NETNF_EXP")


LOCK_OPEN_PATCH = "0011-netfilter-a-restore-finds-and-opens-its-lock-without-waiting-for-rcu.patch"


def test_a_restore_finds_its_lock_and_opens_it_with_rules(patched_tree: Path) -> None:
    """(Live: test_nft_lock_live, the opened lock passes packets and reads as open; the hop
    tests' TCP connections and state survive every restore.)"""
    assert LOCK_OPEN_PATCH in [p.name for p in _patches()]
    net = (patched_tree / "criu" / "net.c").read_text()
    lock = net[net.index("static inline int nftables_lock_network_internal") :]
    lock = lock[: lock.index("\n}\n")]
    assert lock.index('"list table %s"') < lock.index('"create table %s"')
    unlock = net[net.index("static inline int nftables_network_unlock") :]
    unlock = unlock[: unlock.index("\n}\n")]
    assert "if (opts.mode == CR_RESTORE && in_netns) {" in unlock
    # only in a namespace of its own: the host's per-connection table is deleted as before
    assert "ret = nftables_network_unlock(true);" in net
    assert "\t\tnftables_network_unlock(false);" in net
    assert '"insert rule %s input accept\\ninsert rule %s output accept"' in unlock
    assert unlock.index("insert rule") < unlock.index('"delete table %s"')  # fallback
    done = net[net.index("static void nftables_ctx_done") :]
    done = done[: done.index("\n}\n")]
    assert "if (opts.mode == CR_RESTORE)\n\t\treturn;" in done
    assert "nft_ctx_free(nft)" not in lock + unlock  # every context ends in nftables_ctx_done


def test_the_lazy_pages_daemon_reads_the_images_only_once_the_restore_connects(
    patched_tree: Path,
) -> None:
    """Patch 0014: it can start before the images have all arrived (mecmig starts it with the
    destination's receive, before the freeze)."""
    uffd = (patched_tree / "criu" / "uffd.c").read_text()
    main = uffd[uffd.index("int cr_lazy_pages(bool daemon)") :]
    socket, ready = main.index("prepare_lazy_socket()"), main.index("status_ready()")
    accept, images = main.index("accept_restore(lazy_sk)"), main.index("prepare_dummy_pstree()")
    assert socket < ready < accept < images < main.index("prepare_uffds(client, epollfd)")
    assert "connect_to_page_server_to_recv" in main[images:]  # the source's, after the restore's


def test_a_page_server_sessions_close_and_its_answer_are_pushed_through_the_cork(
    patched_tree: Path,
) -> None:
    """Patch 0015: the client's corked socket sent its PS_IOV_CLOSE, and a lazy session's page
    server its answer, only at the cork's 200 ms timer; a post-copy migration's pages phase
    waited ~0.4 s for the two after the last page had arrived."""
    xfer = (patched_tree / "criu" / "page-xfer.c").read_text()
    client = xfer[xfer.index("int disconnect_from_page_server(void)") :]
    client = client[: client.index("\n}\n")]
    sent = client.index("if (send_psi(page_server_sk, &pi))")
    assert sent < client.index("tcp_nodelay(page_server_sk, true);") < client.index("__recv(")
    serve = xfer[xfer.index("static int page_server_serve(int sk)") :]
    close = serve[serve.index("case PS_IOV_CLOSE:") : serve.index("case PS_IOV_GET:")]
    answer = close.index("__send(sk, &status, sizeof(status), 0)")
    assert answer < close.index("if (!receiving_pages)\n\t\t\t\ttcp_nodelay(sk, true);")

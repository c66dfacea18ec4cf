#ifndef CDELAYLINK_H
#define CDELAYLINK_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/// Size of the virtio-net header the kernel prepends with IFF_VNET_HDR.
#define VTP_VNET_HDR_LEN 10

/// Creates a TUN device (no packet info header; with the virtio-net header and TSO/checksum
/// offload when vnet_hdr != 0), non-blocking. Writes the kernel's name into actual_name
/// (at least 16 bytes). Returns the fd, or -errno.
int vtp_tun_open(const char *requested_name, int vnet_hdr, char *actual_name);

/// epoll helpers; return -errno on failure.
int vtp_epoll_create(void);
int vtp_epoll_add(int epfd, int fd, uint64_t tag);
/// Waits for at most max events; tags written into tags. Returns count or -errno.
int vtp_epoll_wait(int epfd, uint64_t *tags, int max, int timeout_ms);

/// CLOCK_MONOTONIC timerfd (non-blocking).
int vtp_timerfd_create(void);
/// Arms at absolute CLOCK_MONOTONIC time in ns (0 disarms).
int vtp_timerfd_arm_abs(int fd, int64_t when_ns);
/// Reads the expiry count (clears readiness). Returns 0 or -errno.
int vtp_timerfd_drain(int fd);

int64_t vtp_monotonic_ns(void);
int64_t vtp_realtime_ns(void);

/// Calling thread to SCHED_FIFO at priority; returns 0 or -errno.
int vtp_set_sched_fifo(int priority);
/// Minimal timer slack for the calling thread (not needed under SCHED_FIFO, helps otherwise).
int vtp_set_timer_slack_ns(unsigned long ns);

ssize_t vtp_read(int fd, void *buf, size_t len);
ssize_t vtp_write(int fd, const void *buf, size_t len);
int vtp_close(int fd);
int vtp_errno(void);

#endif

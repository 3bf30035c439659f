/* SPDX-License-Identifier: GPL-3.0-only */
/* Small files on disk: config directory, capped reads, atomic writes. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

int prd_config_dir_ensure(const char *dir, char *err, size_t errlen) {
  char path[PATH_MAX];
  struct stat st;
  int created = 0;
  size_t len;
  size_t i;

  if (dir == NULL || dir[0] == '\0') {
    return prd_err_fmt(err, errlen, "config directory: empty path");
  }
  len = strlen(dir);
  if (len >= sizeof(path)) {
    return prd_err_fmt(err, errlen, "config directory %s: path too long", dir);
  }
  memcpy(path, dir, len + 1);

  /* mkdir -p: create each missing component with mode 0700. Existing
   * directories keep their mode (~ or ~/.config belong to the user). */
  for (i = 1; i <= len; ++i) {
    if (path[i] != '/' && path[i] != '\0') {
      continue;
    }
    if (path[i - 1] == '/') {
      continue;
    }
    path[i] = '\0';
    created = mkdir(path, 0700) == 0;
    if (!created && errno != EEXIST) {
      return prd_err_fmt(err, errlen, "cannot create config directory %s: %s",
                         path, strerror(errno));
    }
    path[i] = i == len ? '\0' : '/';
  }
  if (stat(dir, &st) != 0) {
    return prd_err_fmt(err, errlen, "config directory %s: %s", dir,
                       strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return prd_err_fmt(err, errlen, "config directory %s is not a directory",
                       dir);
  }
  /* spec/06-files-and-cli.md §1.2: anyone could replace the identity or
   * the pin in a directory everyone may write to; a group-writable one is
   * used as it is, with a warning. */
  if ((st.st_mode & 002) != 0) {
    return prd_err_fmt(
        err, errlen,
        "config directory %s is writable by everyone (mode %04o); "
        "run: chmod 700 %s",
        dir, (unsigned)(st.st_mode & 07777), dir);
  }
  if (!created && (st.st_mode & 020) != 0) {
    PRD_LOG_WARN("config directory %s is writable by its group (mode "
                 "%04o); consider: chmod 700 %s",
                 dir, (unsigned)(st.st_mode & 07777), dir);
  }
  return 0;
}

int prd_file_read(uint8_t **pdata, size_t *plen, const char *path,
                  size_t maxlen) {
  unsigned mode;
  return prd_file_read_mode(pdata, plen, &mode, path, maxlen);
}

int prd_file_read_mode(uint8_t **pdata, size_t *plen, unsigned *pmode,
                       const char *path, size_t maxlen) {
  uint8_t *buf = NULL;
  size_t cap;
  size_t len = 0;
  struct stat st;
  ssize_t n;
  int fd;
  int rv;

  *pdata = NULL;
  *plen = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return -errno;
  }
  if (fstat(fd, &st) != 0) {
    rv = -errno;
    goto fail;
  }
  if (S_ISDIR(st.st_mode)) {
    rv = -EISDIR;
    goto fail;
  }
  *pmode = (unsigned)(st.st_mode & 07777);
  if (st.st_size > 0 && (uint64_t)st.st_size > (uint64_t)maxlen) {
    rv = PRD_ERR_FRAME_TOO_LARGE;
    goto fail;
  }
  /* One byte more than allowed, so that a file that grew is noticed. */
  cap = maxlen + 1;
  buf = malloc(cap);
  if (buf == NULL) {
    rv = PRD_ERR_NOMEM;
    goto fail;
  }
  for (;;) {
    n = read(fd, buf + len, cap - len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      rv = -errno;
      goto fail;
    }
    if (n == 0) {
      break;
    }
    len += (size_t)n;
    if (len > maxlen) {
      rv = PRD_ERR_FRAME_TOO_LARGE;
      goto fail;
    }
  }
  close(fd);
  *pdata = buf;
  *plen = len;
  return 0;

fail:
  if (buf != NULL) {
    explicit_bzero(buf, cap);
    free(buf);
  }
  close(fd);
  return rv;
}

int prd_file_mode_private(unsigned mode) { return (mode & 044) == 0; }

int prd_file_read_private(uint8_t **pdata, size_t *plen, unsigned *pmode,
                          const char *path, size_t maxlen) {
  int rv = prd_file_read_mode(pdata, plen, pmode, path, maxlen);

  if (rv != 0 || prd_file_mode_private(*pmode)) {
    return rv;
  }
  explicit_bzero(*pdata, *plen);
  free(*pdata);
  *pdata = NULL;
  *plen = 0;
  return PRD_ERR_FILE_MODE;
}

/* write_all writes |len| bytes or returns -errno. */
static int write_all(int fd, const uint8_t *data, size_t len) {
  ssize_t n;

  while (len > 0) {
    n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return -errno;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

int prd_file_dir_of(char *dir, size_t dirlen, const char *path) {
  const char *slash = strrchr(path, '/');
  size_t n;

  if (slash == NULL) {
    if (dirlen < 2) {
      return -ENAMETOOLONG;
    }
    memcpy(dir, ".", 2);
    return 0;
  }
  n = slash == path ? 1 : (size_t)(slash - path);
  if (n >= dirlen) {
    return -ENAMETOOLONG;
  }
  memcpy(dir, path, n);
  dir[n] = '\0';
  return 0;
}

int prd_file_fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rv = 0;

  if (fd < 0) {
    return -errno;
  }
  if (fsync(fd) != 0 && errno != EINVAL) {
    rv = -errno;
  }
  close(fd);
  return rv;
}

int prd_file_write_temp(char *tmp, size_t tmplen, const char *path,
                        const uint8_t *data, size_t len, unsigned mode) {
  const char *slash = strrchr(path, '/');
  size_t dirpart = slash == NULL ? 0 : (size_t)(slash - path) + 1;
  const char *base = path + dirpart;
  uint32_t rnd;
  int attempt;
  int fd = -1;
  int rv;
  int n;

  for (attempt = 0; attempt < 16; ++attempt) {
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
      rnd = (uint32_t)attempt;
    }
    n = snprintf(tmp, tmplen, "%.*s.%s.tmp.%ld.%08x", (int)dirpart, path, base,
                 (long)getpid(), (unsigned)rnd);
    if (n < 0 || (size_t)n >= tmplen) {
      return -ENAMETOOLONG;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd >= 0 || errno != EEXIST) {
      break;
    }
  }
  if (fd < 0) {
    return -errno;
  }
  if (fchmod(fd, (mode_t)mode) != 0) {
    rv = -errno;
    goto fail;
  }
  rv = write_all(fd, data, len);
  if (rv != 0) {
    goto fail;
  }
  if (fsync(fd) != 0) {
    rv = -errno;
    goto fail;
  }
  if (close(fd) != 0) {
    fd = -1;
    rv = -errno;
    goto fail;
  }
  return 0;

fail:
  if (fd >= 0) {
    close(fd);
  }
  unlink(tmp);
  return rv;
}

int prd_file_write_atomic(const char *path, const uint8_t *data, size_t len,
                          unsigned mode) {
  char tmp[PATH_MAX];
  char dir[PATH_MAX];
  int rv;

  rv = prd_file_dir_of(dir, sizeof(dir), path);
  if (rv != 0) {
    return rv;
  }
  rv = prd_file_write_temp(tmp, sizeof(tmp), path, data, len, mode);
  if (rv != 0) {
    return rv;
  }
  if (rename(tmp, path) != 0) {
    rv = -errno;
    unlink(tmp);
    return rv;
  }
  return prd_file_fsync_dir(dir);
}

/* link(2) is atomic and never replaces; filesystems without hard links get
 * renameat2(RENAME_NOREPLACE), which has the same semantics. */
int prd_file_publish_noreplace(const char *tmp, const char *path) {
  int rv = 0;

  if (link(tmp, path) != 0) {
    rv = -errno;
    if (rv == -EPERM || rv == -EOPNOTSUPP || rv == -ENOSYS || rv == -EMLINK) {
      rv = 0;
      if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) != 0) {
        rv = -errno;
      } else {
        return 0;
      }
    }
  }
  unlink(tmp);
  return rv;
}

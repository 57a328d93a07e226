"""Read files of a public repository at a fixed commit from a local clone or bare git dir (no checkout, no network)."""
import subprocess
from pathlib import Path
from typing import Iterator, List, Sequence, Tuple

from carseg.errors import CarsegError


def find_git_dir(sources: Path, repo: str) -> Path:
    """The git dir of ``repo`` ("owner/name") under ``sources``: ``NAME``, ``OWNER+NAME`` or ``OWNER+NAME/repo``,
    each a clone or a bare git dir."""
    owner, name = repo.split("/")
    for candidate in (sources / name, sources / f"{owner}+{name}", sources / f"{owner}+{name}" / "repo"):
        for git_dir in (candidate / ".git", candidate):
            if (git_dir / "HEAD").is_file() and (git_dir / "objects").is_dir():
                return git_dir
    raise CarsegError(
        f"{sources}: no git clone of {repo} in it; run: git clone https://github.com/{repo} {sources / name}"
    )


class GitBlobs:
    """``list`` and ``read`` the files of one commit of a git dir (``git cat-file --batch``: one process for all reads)."""

    def __init__(self, git_dir: Path, commit: str, repo: str):
        self.git_dir, self.commit, self.repo = git_dir, commit, repo
        if self._git("cat-file", "-t", commit, check=False).strip() != "commit":
            raise CarsegError(f"{git_dir}: commit {commit} of {repo} is missing; run: git -C {git_dir} fetch origin {commit}")

    def _git(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["git", "--git-dir", str(self.git_dir), *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise CarsegError(f"{self.git_dir}: git {' '.join(args[:2])} failed: {result.stderr.strip()[:200]}")
        return result.stdout

    def list(self, folder: str) -> List[str]:
        """Paths of all files under ``folder`` at the commit, sorted."""
        return sorted(self._git("ls-tree", "-r", "--name-only", self.commit, "--", folder).splitlines())

    def read(self, paths: Sequence[str]) -> Iterator[Tuple[str, bytes]]:
        """``(path, bytes)`` for each path, in order; a missing file raises CarsegError naming it."""
        process = subprocess.Popen(["git", "--git-dir", str(self.git_dir), "cat-file", "--batch"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            for path in paths:
                process.stdin.write(f"{self.commit}:{path}\n".encode())
                process.stdin.flush()
                header = process.stdout.readline().decode().split()
                if len(header) != 3:
                    raise CarsegError(
                        f"{self.repo}@{self.commit[:10]}: {path} is missing from {self.git_dir} "
                        "(a partial snapshot?); clone the repository again"
                    )
                data = process.stdout.read(int(header[2]))
                process.stdout.read(1)  # the newline after each object
                yield path, data
        finally:
            process.stdin.close()
            process.kill()
            process.wait()

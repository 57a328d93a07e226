"""``image_url`` and ``bg_image_url``: the service fetches a photo for a client, guarded against server-side request
forgery. Off unless ``--allow-url-fetch HOST[,HOST]``; then only http(s) URLs of a listed host, never an address
that is loopback, private, link-local or otherwise not global unless that address (or its network) is listed too;
the address checked is the one connected to (DNS cannot answer differently in between); a redirect only to the
same host, checked again; the body at most ``max_bytes``, the whole fetch at most ``timeout_s``."""
import ipaddress
import socket
from typing import List, Optional, Sequence, Union

import anyio
import httpx

from carseg.errors import CarsegError
from carseg.serve.photos import ServeError

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 3


def parse_hosts(text: str) -> List[str]:
    """``HOST[,HOST]``: host names, IP addresses or networks (``10.0.0.0/8``), checked; lower-cased."""
    hosts = [host.strip().lower() for host in text.split(",") if host.strip()]
    for host in hosts:
        if not _network(host) and not all(part.isalnum() or part.replace("-", "").isalnum()
                                           for part in host.rstrip(".").split(".")):
            raise CarsegError(f"--allow-url-fetch {text}: {host[:40]} is not a host name, IP address or network; "
                              "give e.g. images.example.com,10.0.0.0/8")
    if not hosts:
        raise CarsegError("--allow-url-fetch: give the hosts to fetch from, e.g. images.example.com")
    return hosts


def _network(text: str) -> Optional[Network]:
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        return None


class Refused(ServeError):
    """A URL the service does not fetch, or could not: 400, one line naming the field."""

    def __init__(self, field: str, message: str, code: str = "invalid_image_url"):
        super().__init__(400, f"{field}: {message}", code)


class UrlFetcher:
    """Fetches from the ``hosts`` of ``--allow-url-fetch`` (see the module's text)."""

    def __init__(self, hosts: Sequence[str], max_bytes: int, timeout_s: float):
        self.names = {host for host in hosts if _network(host) is None}
        self.networks = [network for network in map(_network, hosts) if network is not None]
        self.max_bytes, self.timeout_s = max_bytes, timeout_s

    async def fetch(self, url: str, field: str = "image_url") -> bytes:
        """The body of ``url`` (status 200), or ``Refused``."""
        try:
            with anyio.fail_after(self.timeout_s):
                return await self._fetch(url, field)
        except TimeoutError:
            raise Refused(field, f"no answer within {self.timeout_s:g} s; upload the photo as image_file instead",
                          "failed_to_download") from None
        except httpx.HTTPError as exc:
            raise Refused(field, f"could not download it ({exc.__class__.__name__}); check the URL or upload the "
                                 "photo as image_file", "failed_to_download") from None

    async def _fetch(self, url: str, field: str) -> bytes:
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise Refused(field, "not a URL; give http(s)://HOST/PATH") from None
        host = target.host.lower()
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=self.timeout_s) as client:
            for _ in range(MAX_REDIRECTS + 1):
                address = await self._address(target, field)
                extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
                request = client.build_request("GET", target.copy_with(host=address), extensions=extensions,
                                               headers={"Host": target.netloc.decode("ascii"),
                                                        "Accept-Encoding": "identity"})
                response = await client.send(request, stream=True)
                try:
                    if response.status_code in REDIRECTS and "location" in response.headers:
                        target = target.join(response.headers["location"])
                        if target.host.lower() != host:
                            raise Refused(field, f"redirected to another host ({target.host[:40]}), which the service "
                                                 "does not follow; give the final URL")
                        continue
                    if response.status_code != 200:
                        raise Refused(field, f"the server answered {response.status_code}; check the URL",
                                      "failed_to_download")
                    return await self._body(response, field)
                finally:
                    await response.aclose()
        raise Refused(field, f"more than {MAX_REDIRECTS} redirects; give the final URL")

    async def _address(self, url: httpx.URL, field: str) -> str:
        """The address to connect to for ``url``: its host listed, all its addresses allowed; one of them."""
        if url.scheme not in ("http", "https"):
            raise Refused(field, f"{url.scheme[:10]}: URLs are not fetched; give an http:// or https:// URL")
        if url.userinfo:
            raise Refused(field, "a URL with a user name or password is not fetched")
        host = url.host.lower()
        literal = _network(host) if ":" in host or host.replace(".", "").isdigit() else None
        if host not in self.names and not (literal and any(literal.subnet_of(net) for net in self.networks
                                                           if net.version == literal.version)):
            raise Refused(field, f"the service does not fetch from {host[:40]} (not in its --allow-url-fetch); "
                                 "upload the photo as image_file instead")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise Refused(field, f"{host[:40]} does not resolve; check the URL", "failed_to_download") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        for address in addresses:
            if not address.is_global and not any(address in net for net in self.networks):
                raise Refused(field, f"{host[:40]} is a loopback, private or reserved address, which the service "
                                     "fetches only when --allow-url-fetch lists it")
        return str(addresses[0])

    async def _body(self, response: httpx.Response, field: str) -> bytes:
        too_large = Refused(field, f"over the limit of {self.max_bytes / 2**20:g} MB (--max-upload-mb); give a "
                                   "smaller photo", "file_too_large")
        if response.headers.get("content-encoding", "identity").lower() != "identity":  # no decompression bombs
            raise Refused(field, "the server sent it compressed, which the service does not unpack; serve it plain",
                          "failed_to_download")
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise too_large
        chunks, size = [], 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

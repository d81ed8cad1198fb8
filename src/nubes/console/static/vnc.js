// The remote connection page (templates/vnc.html): asks the console for a fresh one-time VNC
// URL (DescribeInstanceVncUrl) on each Connect and shows the display with noVNC, which sends
// the password typed here to the VM's VNC server. A module file: the console's CSP allows no
// inline script.
import RFB from "./novnc/core/rfb.js";

const form = document.getElementById("vnc-connect");
const screen = document.getElementById("vnc-screen");
const statusText = document.getElementById("vnc-status");
const disconnectButton = document.getElementById("vnc-disconnect");
const ctrlAltDelButton = document.getElementById("vnc-ctrl-alt-del");
let rfb = null;
let failure = "";

function show(text) {
    statusText.textContent = text;
}

function connected(on) {
    disconnectButton.disabled = !on;
    ctrlAltDelButton.disabled = !on;
}

async function freshPath() {
    // POST with the session's CSRF token, as every console POST
    const body = new URLSearchParams({ csrf_token: form.elements.csrf_token.value });
    const response = await fetch(form.dataset.url, { method: "POST", body, credentials: "same-origin" });
    const answer = await response.json();
    if (!response.ok) {
        throw new Error(`${answer.Code}: ${answer.Message}`);
    }
    return answer.path;
}

async function connect(event) {
    event.preventDefault();
    if (rfb) {
        rfb.disconnect();
    }
    failure = "";
    show("connecting");
    let path;
    try {
        path = await freshPath();
    } catch (error) {
        show(`error: ${error.message}`);
        return;
    }
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const password = form.elements.password.value;
    const client = new RFB(screen, scheme + location.host + path, {
        credentials: { password },
        wsProtocols: ["binary"],
    });
    client.scaleViewport = true;
    client.addEventListener("connect", () => {
        show("connected");
        connected(true);
        client.focus();
    });
    client.addEventListener("securityfailure", (e) => {
        failure = `error: ${e.detail.reason || "authentication failed"} (wrong VNC password?)`;
    });
    client.addEventListener("credentialsrequired", () => {
        failure = "error: enter the VNC password";
        client.disconnect();
    });
    client.addEventListener("disconnect", (e) => {
        connected(false);
        if (rfb === client) {
            rfb = null;
        }
        show(failure || (e.detail.clean ? "disconnected" : "disconnected: the connection was lost or refused"));
    });
    rfb = client;
}

form.addEventListener("submit", connect);
document.getElementById("vnc-connect-button").disabled = false; // noVNC is loaded: ready
disconnectButton.addEventListener("click", () => rfb && rfb.disconnect());
ctrlAltDelButton.addEventListener("click", () => rfb && rfb.sendCtrlAltDel());

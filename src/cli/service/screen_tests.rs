use super::*;

#[test]
fn on_a_terminal_lines_are_redrawn_in_place() {
    let mut screen = Screen::new(Vec::new(), Some(200));
    screen
        .progress("overall progress", "0 out of 1 tasks", None)
        .unwrap();
    screen.progress("1/1", "running  ", Some(9)).unwrap();
    screen
        .progress("overall progress", "1 out of 1 tasks", None)
        .unwrap();
    screen.message("rollback", "done").unwrap();
    let full = format!("[{}>] ", "=".repeat(50));
    assert_eq!(
        screen.drawn(),
        format!(
            "\n\x1b[1A\x1b[2K\roverall progress: 0 out of 1 tasks \r\x1b[1B\
             \n\x1b[1A\x1b[2K\r1/1: running   {full}\r\x1b[1B\
             \x1b[2A\x1b[2K\roverall progress: 1 out of 1 tasks \r\x1b[2B\
             rollback: done\n"
        )
    );
    // After a message, a line with a known ID starts a new block below it.
    screen.progress("1/1", "running  ", None).unwrap();
    assert_eq!(screen.drawn(), "\n\x1b[1A\x1b[2K\r1/1: running   \r\x1b[1B");
}

#[test]
fn narrow_terminals_get_no_bars() {
    let mut screen = Screen::new(Vec::new(), Some(80));
    screen.progress("1/1", "pending  ", Some(3)).unwrap();
    assert_eq!(screen.drawn(), "\n\x1b[1A\x1b[2K\r1/1: pending   \r\x1b[1B");
}

#[test]
fn bars_fill_with_the_task_state() {
    assert_eq!(bar(3), format!("[{}>{}] ", "=".repeat(16), " ".repeat(34)));
    assert_eq!(bar(1), format!("[{}>{}] ", "=".repeat(5), " ".repeat(45)));
    assert_eq!(bar(9), format!("[{}>] ", "=".repeat(50)));
}

#[test]
fn messages_without_an_id_are_bare_lines() {
    let mut screen = Screen::new(Vec::new(), None);
    screen
        .message("", "Operation continuing in background.")
        .unwrap();
    screen
        .progress("verify", "Waiting 5 seconds", None)
        .unwrap();
    screen
        .progress("verify", "Waiting 5 seconds", None)
        .unwrap();
    assert_eq!(
        screen.drawn(),
        "Operation continuing in background.\nverify: Waiting 5 seconds\n"
    );
}

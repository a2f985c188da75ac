# oclgrind-reports.awk: count Oclgrind's reports in its stderr output; exit 1
# if any fails (tests/opencl/on-impl.sh, bench/gpu-check.sh on a simulator).
# A report is a message line followed by "\tKernel: NAME" (kernel errors:
# invalid accesses, data races, divergence, uninitialised values) or the line
# "Oclgrind - OpenCL runtime error detected" followed by "\tFunction: F" and
# "\tError: E" (API errors). Not failing: uninitialised-value reports
# (Oclgrind 21.10's false positives, see on-impl.sh) and the API errors that
# recur's tests provoke on purpose. -v rc=N: the command's exit status, for
# the summary line.
/^\tKernel: / {
    kind = prev
    sub(/\r$/, "", kind)
    if (kind ~ /^Uninitiali[sz]ed |^Controlflow depends on uninitiali[sz]ed/) uninit++
    else { bad++; print "OCLGRIND REPORT: " kind " (" substr($0, 2) ")" }
}
/Oclgrind - OpenCL runtime error detected/ { api = 1; fn = ""; next }
api && /^\tFunction: / { fn = $2 }
api && /^\tError: / {
    api = 0
    if ((fn == "clBuildProgram" && $2 == "CL_BUILD_PROGRAM_FAILURE") ||
        (fn == "clCreateKernel" && $2 == "CL_INVALID_KERNEL_NAME") ||
        (fn == "clCreateProgramWithBinary" && $2 == "CL_INVALID_BINARY")) expected++
    else { bad++; print "OCLGRIND REPORT: API error " $2 " in " fn }
}
!/^\t/ && NF { prev = $0 }
END {
    printf "oclgrind: %d report(s) failing, %d uninitialised-value report(s) filtered (a known false positive), " \
           "%d deliberate API error(s)%s\n", bad, uninit, expected, rc == "" ? "" : "; command exit " rc
    exit (bad > 0)
}

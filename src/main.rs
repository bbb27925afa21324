fn main() {
    println!("ctscope: under construction");
}

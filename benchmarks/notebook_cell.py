"""The seed notebook's 1,000,000-update training cell (In [45]), its own code against
``rnnlab.notebook``: the same printed losses, and the time per update.

    python benchmarks/notebook_cell.py [UPDATES]   (default 20,000 of each)

The notebook's functions and class below are its cells, verbatim (its comments and
blank lines included), so the comparison is with the code a reader ran.
"""
# ruff: noqa
# fmt: off

import contextlib
import io
import math
import random
import sys
import time


def log_loss(y_hat, y):
    """
    y_hat is the prediction
    y is the true value
    """
    if y == 1:
        return -math.log(y_hat)
    elif y == 0:
        return -math.log(1-y_hat)
    else:
        raise InvalidInputError("y must be 0 or 1 but it is ", y)

def sigmoid(z):
    return 1 / (1 + (math.e**-z))


def by_derivative(y_hat, y):
    """
    y bias derivative with respect to log loss
    """
    return (y_hat-y)

def Wy_derivative(y_hat, y, a):
    """
    y weights derivative with respect to log loss
    """
    return by_derivative(y_hat,y)*a

def ba_derivative(y_hat, y, Wy, an):
    """
    x bias derivative
    """
    return (y_hat-y)*Wy*an*(1-an)

def Waa_derivative(y_hat, y, Wy, an, a_prev):
    return ba_derivative(y_hat, y, Wy, an) * a_prev

def Wax_derivative(y_hat, y, Wy, an, x):
    return ba_derivative(y_hat, y, Wy, an) * x


class RNN:
    def __init__(self):
        self.Wy_first = random.gauss(0, 0.2)
        self.Wy_second = random.gauss(0, 0.2)
        self.by = random.gauss(0, 0.2)
        
        self.Waa_first_1 = random.gauss(0, 0.2)
        self.Waa_first_2 = random.gauss(0, 0.2)
        self.ba_first = random.gauss(0, 0.2)
        
        self.Waa_second_1 = random.gauss(0, 0.2)
        self.Waa_second_2 = random.gauss(0, 0.2)
        self.ba_second = random.gauss(0, 0.2)
        
        self.Wax_first = random.gauss(0, 0.2)
        self.Wax_second = random.gauss(0, 0.2)

        self.a_first = 0
        self.a_second = 0
        
        # an example of correct output parameters
        self.Wy_first = 0 
        self.Wy_second = 10 # correct
        self.by = -5 # correct
        
        self.Waa_first_1 = 0
        self.Waa_first_2 = 0
        self.ba_first = 5 # -5
        
        self.Waa_second_1 = 10
        self.Waa_second_2 = 0
        self.ba_second = -5
        
        self.Wax_first = 10
        self.Wax_second = 0


    def predict(self, x_input):
        """
        x_input is a list
        """
        output = []
        
        # set the initial value for a
        current_a_first = self.a_first
        current_a_second = self.a_second
        
        for x in x_input:
            current_y_hat, current_a_first, current_a_second = self.run(x, current_a_first, current_a_second)
            
            output.append(current_y_hat)
            
        return output


    def run(self, x, a_first, a_second):
        """
        run the input through the rnn to get the an and y_hat 
        """
        current_a_first = sigmoid(self.Waa_first_1*a_first + self.Waa_first_2*a_second + self.Wax_first*x+ self.ba_first)
        current_a_second = sigmoid(self.Waa_second_1*a_first + self.Waa_second_2*a_second + self.Wax_second*x+ self.ba_second)
        
        current_y_hat = sigmoid(self.Wy_first*current_a_first + self.Wy_second*current_a_second +self.by)
        
        return current_y_hat, current_a_first, current_a_second


    def forward_pass(self, x, y, a_first, a_second):
        """
        do a single forward pass of the training phase and calculate gradients
        
        this forward pass represents a single time step of the RNN
        """
        
        Wy_first_gradient = None # done
        Wy_second_gradient = None # done
        by_gradient = None # done
        
        Waa_first_1_gradient = None # done
        Waa_first_2_gradient = None # done
        ba_first_gradient = None # done
        
        Waa_second_1_gradient = None
        Waa_second_2_gradient = None
        ba_second_gradient = None # done
        
        Wax_first_gradient = None # done
        Wax_second_gradient = None
        
        # predict the y_hat and activations a
        y_hat, current_a_first, current_a_second = self.run(x, a_first, a_second)
        
        by_gradient = by_derivative(y_hat, y)
        Wy_first_gradient = Wy_derivative(y_hat, y, current_a_first)
        Wy_second_gradient = Wy_derivative(y_hat, y, current_a_second)
        
        ba_first_gradient = ba_derivative(y_hat, y, self.Wy_first, current_a_first)
        Wax_first_gradient = Waa_derivative(y_hat, y, self.Wy_first, current_a_first, x)
        Waa_first_1_gradient = Waa_derivative(y_hat, y, self.Wy_first, current_a_first, a_first)
        Waa_first_2_gradient = Waa_derivative(y_hat, y, self.Wy_first, current_a_first, a_second)
        
        ba_second_gradient = ba_derivative(y_hat, y, self.Wy_second, current_a_second)
        Wax_second_gradient = Waa_derivative(y_hat, y, self.Wy_second, current_a_second, x)
        Waa_second_1_gradient = Waa_derivative(y_hat, y, self.Wy_second, current_a_second, a_first)
        Waa_second_2_gradient = Waa_derivative(y_hat, y, self.Wy_second, current_a_second, a_second)
        
        gradients = (Wy_first_gradient, Wy_second_gradient, by_gradient, 
                     Waa_first_1_gradient, Waa_first_2_gradient, ba_first_gradient, 
                     Waa_second_1_gradient, Waa_second_2_gradient, ba_second_gradient, 
                     Wax_first_gradient, Wax_second_gradient)
        
        return gradients, current_a_first, current_a_second, y_hat


    def update_weights(self, x_input, y_input, learning_rate=0.0001, print_loss=False):
        """
        calculate the gradients and update the weights for a single datapoint
        """
        a1 = self.a_first
        a2 = self.a_second
        
        Wy_first_gradient_sum = 0
        Wy_second_gradient_sum = 0
        by_gradient_sum = 0
        
        Waa_first_1_gradient_sum = 0
        Waa_first_2_gradient_sum = 0
        ba_first_gradient_sum = 0
        
        Waa_second_1_gradient_sum = 0
        Waa_second_2_gradient_sum = 0
        ba_second_gradient_sum = 0
        
        Wax_first_gradient_sum = 0
        Wax_second_gradient_sum = 0
        
        loss = 0
        
        for i in range(len(x_input)):
            x = x_input[i]
            y = y_input[i]
            gradients, a1, a2, y_hat = self.forward_pass(x, y, a1, a2)
            
#             print("gradients", gradients)
            (Wy_first_gradient, Wy_second_gradient, by_gradient, 
                     Waa_first_1_gradient, Waa_first_2_gradient, ba_first_gradient, 
                     Waa_second_1_gradient, Waa_second_2_gradient, ba_second_gradient, 
                     Wax_first_gradient, Wax_second_gradient) = gradients
            
#             print("by_gradient", by_gradient)
            # sum up the gradients for the entire sequence
            Wy_first_gradient_sum += Wy_first_gradient
            Wy_second_gradient_sum += Wy_second_gradient
            by_gradient_sum += by_gradient
            Waa_first_1_gradient_sum += Waa_first_1_gradient
            Waa_first_2_gradient_sum += Waa_first_2_gradient
            ba_first_gradient_sum += ba_first_gradient
            Waa_second_1_gradient_sum += Waa_second_1_gradient
            Waa_second_2_gradient_sum += Waa_second_2_gradient
            ba_second_gradient_sum += ba_second_gradient
            Wax_first_gradient_sum += Wax_first_gradient
            Wax_second_gradient_sum += Wax_second_gradient
            
            loss += log_loss(y_hat, y)
        
        # print the loss for the individual sequence
        if print_loss:
            print("logistic loss", loss)
            
        # gradient descent update
        self.Wy_first = self.Wy_first - learning_rate * Wy_first_gradient_sum
        self.Wy_second = self.Wy_second - learning_rate * Wy_second_gradient_sum
        self.by = self.by - learning_rate * by_gradient_sum
        self.Waa_first_1 = self.Waa_first_1 - learning_rate * Waa_first_1_gradient_sum
        self.Waa_first_2 = self.Waa_first_2 - learning_rate * Waa_first_2_gradient_sum
        self.ba_first = self.ba_first - learning_rate * ba_first_gradient_sum
        self.Waa_second_1 = self.Waa_second_1 - learning_rate * Waa_second_1_gradient_sum
        self.Waa_second_2 = self.Waa_second_2 - learning_rate * Waa_second_2_gradient_sum
        self.ba_second = self.ba_second - learning_rate * ba_second_gradient_sum
        self.Wax_first = self.Wax_first - learning_rate * Wax_first_gradient_sum
        self.Wax_second = self.Wax_second - learning_rate * Wax_second_gradient_sum


# -- the comparison --------------------------------------------------------------------------


def cell(model, updates):
    """In [45], ``updates`` iterations: what it prints, and seconds per update."""
    out = io.StringIO()
    tick = time.perf_counter()
    with contextlib.redirect_stdout(out):
        model.update_weights([1, 1], [0, 1], learning_rate=1, print_loss=True)  # In [42]
        for i in range(updates):
            print_loss = False
            if i % 1000 == 0:
                print_loss = True
            model.update_weights([0, 1, 0, 1, 1, 1, 1, 1], [0, 0, 1, 0, 1, 1, 1, 1],
                                 learning_rate=0.01, print_loss=print_loss)
    return out.getvalue(), (time.perf_counter() - tick) / (updates + 1)


def main():
    from rnnlab import notebook

    updates = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    cell(notebook.RNN(), 10)  # (kernels loaded)
    best = {}
    for _ in range(3):  # interleaved, best of three
        for name, make in (("notebook", RNN), ("rnnlab.notebook", notebook.RNN)):
            printed, seconds = cell(make(), updates)
            best[name] = min(best.get(name, math.inf), seconds)
            best[name + " printed"] = printed
    same = best["notebook printed"] == best["rnnlab.notebook printed"]
    lines = best["notebook printed"].count("\n")
    print(f"In [45] with {updates} updates: printed the same {lines} lines: {same}")
    for name in ("notebook", "rnnlab.notebook"):
        print(f"{name:16s} {best[name] * 1e6:6.1f} us per update")
    ratio = best["notebook"] / best["rnnlab.notebook"]
    print(f"rnnlab.notebook is {ratio:.1f}x faster; the 1,000,000-update cell: "
          f"{best['notebook'] * 1e6:.0f} s -> {best['rnnlab.notebook'] * 1e6:.0f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
